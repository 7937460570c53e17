"""The one place that decides who may do what in a project.

Every view and API endpoint asks ``can()`` (usually through ``selectors.project_get_for_user``).
Actions are strings ``<area>.<verb>``; each maps to the roles allowed to perform it. Staff users may
*see* every project (read actions) but act only where they hold a role, except ``project.*`` admin.
"""

from .models import Role

ALL = frozenset(Role.values)
O, DS, R, M, A = Role.OWNER, Role.DATA_SCIENTIST, Role.REVIEWER, Role.MANAGER, Role.ANALYST  # noqa: E741

ACTIONS: dict[str, frozenset[str]] = {
    # projects, people, audit
    "project.view": ALL,
    "project.edit": frozenset({O}),
    "project.archive": frozenset({O}),
    "member.view": ALL,
    "member.manage": frozenset({O}),
    "audit.view": ALL,
    "job.view": ALL,
    "job.start": frozenset({O, DS, M}),
    "job.cancel": frozenset({O, DS}),
    # feature store
    "feature.view": ALL,
    "feature.edit": frozenset({O, DS}),
    "trainingset.build": frozenset({O, DS}),
    # registry
    "model.view": ALL,
    "model.upload": frozenset({O, DS}),
    "model.download": frozenset({O, DS, R, M, A}),
    "model.archive": frozenset({O, DS}),
    "training.run": frozenset({O, DS}),
    # deployments, shadow, promotion
    "deployment.view": ALL,
    "deployment.manage": frozenset({O, DS}),
    "deployment.rollback": frozenset({O}),
    "deployment.keys": frozenset({O, DS}),
    "shadow.manage": frozenset({O, DS}),
    "promotion.request": frozenset({O, DS}),
    "promotion.review": frozenset({O, R}),
    # monitoring
    "monitoring.view": ALL,
    "monitoring.configure": frozenset({O, DS, A}),
    "alert.acknowledge": frozenset({O, DS, A}),
    "retraining.configure": frozenset({O, DS}),
    # readiness
    "readiness.view": ALL,
    "readiness.answer": frozenset({O, M}),
    # monitoring (added by the monitoring app)
    "outcome.post": frozenset({O, DS, A}),
    "monitoring.run": frozenset({O, DS, A}),
}

READ_ACTIONS = frozenset(a for a in ACTIONS if a.endswith(".view"))


def role_allows(role: str | None, action: str) -> bool:
    if action not in ACTIONS:
        raise KeyError(f"Unknown action {action!r}: add it to apps.projects.permissions.ACTIONS")
    return role is not None and role in ACTIONS[action]


def can(user, project, action: str, *, role: str | None = None) -> bool:
    """True when ``user`` may perform ``action`` on ``project``. ``role`` may be passed when known
    (``project=None`` with ``role=None``: the caller knows the user has no role in the project)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if role is None and project is not None:
        role = project_role(user, project)
    if role_allows(role, action):
        return True
    return bool(user.is_staff and action in READ_ACTIONS)


def project_role(user, project) -> str | None:
    cache = getattr(user, "_slipway_roles", None)
    if cache is None:
        cache = user._slipway_roles = {}
    if project.pk not in cache:
        from .models import Membership

        cache[project.pk] = (
            Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
        )
    return cache[project.pk]

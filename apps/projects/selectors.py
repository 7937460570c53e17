"""Reads shared by pages, the API and workers. Access is checked here, once, in the query."""

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet

from apps.common.errors import NotFound, PermissionDenied

from .models import ApiToken, AuditEvent, Job, Membership, Project, Role
from .permissions import can, project_role


def project_list_for_user(*, user, include_archived: bool = False, search: str = "") -> QuerySet[Project]:
    qs = Project.objects.all() if user.is_staff else Project.objects.filter(memberships__user=user)
    if not include_archived:
        qs = qs.filter(archived_at__isnull=True)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    return qs.annotate(member_count=Count("memberships", distinct=True)).order_by("name")


def project_get_for_user(*, user, slug: str, action: str = "project.view") -> Project:
    """The project ``slug`` if ``user`` may perform ``action`` on it.

    Not a member (and not staff): 404, so the project's existence is not revealed.
    A member whose role lacks the action: 403.
    """
    qs = Project.objects.all() if user.is_staff else Project.objects.filter(memberships__user=user)
    project = qs.filter(slug=slug).first()
    if project is None:
        raise NotFound(f"Project {slug!r} not found")
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")
    project.current_role = project_role(user, project)
    project.current_role_label = Role(project.current_role).label if project.current_role else ""
    return project


def membership_list(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("user__username")


def audit_event_list(*, project: Project, verb: str = "", actor: str = "", target_type: str = "",
                     since=None, until=None) -> QuerySet[AuditEvent]:
    qs = project.audit_events.select_related("actor")
    if verb:
        qs = qs.filter(verb__startswith=verb)
    if actor:
        qs = qs.filter(actor__username=actor)
    if target_type:
        qs = qs.filter(target_type=target_type)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    return qs


def audit_verbs(*, project: Project) -> list[str]:
    return list(project.audit_events.order_by("verb").values_list("verb", flat=True).distinct())


def api_token_list_for_user(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def job_get_for_user(*, user, job_id) -> Job:
    """The job if ``user`` may see it. A job in a project they cannot see answers exactly like a missing
    one (no project name: its existence is not revealed)."""
    job = Job.objects.select_related("project").filter(pk=job_id).first()
    if job is None:
        raise NotFound("Job not found")
    if job.project is None:
        if job.created_by_id != user.pk and not user.is_staff:
            raise NotFound("Job not found")
        return job
    try:
        project_get_for_user(user=user, slug=job.project.slug, action="job.view")
    except NotFound:
        raise NotFound("Job not found") from None
    return job


def user_get_by_username(*, username: str):
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFound(f"No active user named {username!r}", field="username")
    return user

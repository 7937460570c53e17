"""The demo organisation: one user per role and a project. Later capabilities extend ``demo_load``."""

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from .models import Membership, Project, Role
from .services import audit_record, membership_add, project_create

DEMO_PASSWORD = "slipway-demo"
DEMO_USERS = [
    # username, role, full name
    ("olivia", Role.OWNER, "Olivia Owner"),
    ("dana", Role.DATA_SCIENTIST, "Dana Scientist"),
    ("rita", Role.REVIEWER, "Rita Reviewer"),
    ("max", Role.MANAGER, "Max Manager"),
    ("ana", Role.ANALYST, "Ana Analyst"),
]


@transaction.atomic
def demo_users_ensure() -> dict:
    User = get_user_model()
    users = {}
    hashed = None  # one hash for every demo user: the password is public anyway, and each hash costs ~0.5 s
    for username, _role, full_name in DEMO_USERS:
        first, last = full_name.split(" ", 1)
        user, created = User.objects.get_or_create(username=username, defaults={"first_name": first, "last_name": last,
                                                                                "email": f"{username}@example.com"})
        if created:
            hashed = hashed or make_password(DEMO_PASSWORD)
            user.password = hashed
            user.save()
        users[username] = user
    admin, created = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True,
                                                                            "email": "admin@example.com"})
    if created:
        admin.password = hashed or make_password(DEMO_PASSWORD)
        admin.save()
    users["admin"] = admin
    return users


@transaction.atomic
def demo_project_ensure(*, users: dict, slug: str, name: str, description: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        project = project_create(actor=users["olivia"], name=name, slug=slug, description=description)
        audit_record(actor=users["olivia"], verb="demo.seed", project=project, target=project)
    for username, role, _ in DEMO_USERS:
        if not Membership.objects.filter(project=project, user=users[username]).exists():
            membership_add(project=project, actor=users["olivia"], user=users[username], role=role)
    return project


def demo_load(*, stdout=None) -> dict:
    users = demo_users_ensure()
    project = demo_project_ensure(
        users=users, slug="churn", name="Customer churn",
        description="Predict which subscribers will cancel in the next 30 days, so retention can call them first.",
    )
    return {"users": users, "projects": [project]}

import pytest

from apps.common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from apps.projects.models import ApiToken, AuditEvent, Job, JobStatus, Membership, Project
from apps.projects.services import (
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
    audit_record,
    csv_safe,
    job_cancel,
    job_create,
    membership_add,
    membership_change_role,
    membership_remove,
    project_create,
    project_update,
)

pytestmark = pytest.mark.django_db


def test_project_create_makes_creator_owner_and_audits(make_user):
    user = make_user()
    project = project_create(actor=user, name="  Churn  ", description="d")
    assert project.slug == "churn" and project.name == "Churn"
    assert Membership.objects.get(project=project, user=user).role == "owner"
    assert AuditEvent.objects.filter(project=project, verb="project.create", actor=user).exists()


@pytest.mark.parametrize("name,slug,field", [
    ("", "", "name"), ("   ", "", "name"), ("x" * 121, "", "name"),
    ("ok", "Bad Slug!", "slug"), ("ok", "a" * 51, "slug"),
])
def test_project_create_bad_input_names_field_and_saves_nothing(make_user, name, slug, field):
    user = make_user()
    with pytest.raises(InvalidInput) as exc:
        project_create(actor=user, name=name, slug=slug)
    assert exc.value.errors[0]["field"] == field
    assert Project.objects.count() == 0 and Membership.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_project_create_duplicate_slug_conflicts_and_saves_nothing(make_user):
    user = make_user()
    project_create(actor=user, name="Churn")
    with pytest.raises(Conflict):
        project_create(actor=user, name="Another", slug="churn")
    assert Project.objects.count() == 1 and Membership.objects.count() == 1


def test_last_owner_cannot_be_removed_or_demoted(project, users):
    owner_m = Membership.objects.get(project=project, user=users["owner"])
    with pytest.raises(Conflict):
        membership_remove(membership=owner_m, actor=users["owner"])
    with pytest.raises(Conflict):
        membership_change_role(membership=owner_m, actor=users["owner"], role="analyst")
    # with a second owner it works
    other = Membership.objects.get(project=project, user=users["manager"])
    membership_change_role(membership=other, actor=users["owner"], role="owner")
    membership_change_role(membership=owner_m, actor=users["owner"], role="analyst")
    assert Membership.objects.get(pk=owner_m.pk).role == "analyst"


def test_membership_add_rules(project, users, make_user):
    with pytest.raises(Conflict):
        membership_add(project=project, actor=users["owner"], user=users["analyst"], role="reviewer")
    newcomer = make_user("newcomer")
    with pytest.raises(InvalidInput):
        membership_add(project=project, actor=users["owner"], user=newcomer, role="king")
    with pytest.raises(PermissionDenied):
        membership_add(project=project, actor=users["data_scientist"], user=newcomer, role="analyst")
    inactive = make_user("gone", is_active=False)
    with pytest.raises(NotFound):
        membership_add(project=project, actor=users["owner"], user=inactive, role="analyst")
    assert not Membership.objects.filter(user__in=[newcomer, inactive]).exists()
    membership_add(project=project, actor=users["owner"], user=newcomer, role="analyst")
    event = AuditEvent.objects.filter(verb="member.add").latest("id")
    assert event.details == {"username": "newcomer", "role": "analyst"} and event.actor == users["owner"]


def test_audit_events_are_append_only(project, users):
    event = audit_record(actor=users["owner"], verb="x.y", project=project)
    event.verb = "changed"
    with pytest.raises(RuntimeError):
        event.save()
    with pytest.raises(RuntimeError):
        event.delete()


def test_project_update_is_audited_with_changes(project, users):
    project_update(project=project, actor=users["owner"], name="Fraud v2")
    event = AuditEvent.objects.filter(verb="project.update").latest("id")
    assert event.details["name"] == ["Fraud detection", "Fraud v2"]


def test_tokens_are_hashed_shown_once_revocable_and_track_last_use(make_user):
    user = make_user()
    token, plaintext = api_token_create(user=user, name="notebook")
    assert plaintext.startswith("slw_") and plaintext not in token.token_hash
    assert not ApiToken.objects.filter(token_hash=plaintext).exists()
    assert api_token_authenticate(plaintext=plaintext) == user
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert api_token_authenticate(plaintext=plaintext + "x") is None
    assert api_token_authenticate(plaintext="") is None
    api_token_revoke(token=token, actor=user)
    assert api_token_authenticate(plaintext=plaintext) is None
    with pytest.raises(InvalidInput):
        api_token_create(user=user, name="")


def test_inactive_user_token_does_not_authenticate(make_user):
    user = make_user()
    _, plaintext = api_token_create(user=user, name="t")
    user.is_active = False
    user.save()
    assert api_token_authenticate(plaintext=plaintext) is None


def test_job_idempotency_key_returns_the_first_job(project, users):
    a = job_create(kind="k", actor=users["owner"], project=project, idempotency_key="abc")
    b = job_create(kind="k", actor=users["owner"], project=project, idempotency_key="abc")
    assert a.pk == b.pk and Job.objects.count() == 1


def test_job_cancel_of_queued_job(project, users):
    job = job_create(kind="k", actor=users["owner"], project=project)
    job = job_cancel(job=job, actor=users["data_scientist"])
    assert job.status == JobStatus.CANCELLED
    with pytest.raises(Conflict):
        job_cancel(job=job, actor=users["owner"])
    job2 = job_create(kind="k", actor=users["owner"], project=project)
    with pytest.raises(PermissionDenied):
        job_cancel(job=job2, actor=users["analyst"])


@pytest.mark.parametrize("value,expected", [("=1+2", "'=1+2"), ("+x", "'+x"), ("-x", "'-x"), ("@x", "'@x"),
                                            ("\tx", "'\tx"), ("\rx", "'\rx"), ("ok", "ok"), ("", "")])
def test_csv_safe_neutralises_formulas(value, expected):
    assert csv_safe(value) == expected

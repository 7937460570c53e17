import pytest

from apps.projects.models import Membership, Project

pytestmark = pytest.mark.django_db


def test_project_list_page_and_htmx_fragment(users, logged_in_client):
    client = logged_in_client(users["analyst"])
    page = client.get("/")
    assert page.status_code == 200 and b"<html" in page.content and b"Fraud detection" in page.content
    frag = client.get("/?q=fraud", headers={"HX-Request": "true"})
    assert frag.status_code == 200 and b"<html" not in frag.content and b"Fraud detection" in frag.content


@pytest.mark.parametrize("data,error", [
    ({"name": ""}, b"This field is required"),
    ({"name": "x" * 121}, b"at most 120 characters"),
    ({"name": "Dup", "slug": "fraud"}, b"already exists"),
])
def test_project_create_form_errors_are_inline_and_nothing_saved(users, logged_in_client, data, error):
    resp = logged_in_client(users["owner"]).post("/projects/new/", data)
    assert resp.status_code == 422 and error in resp.content
    assert Project.objects.count() == 1


def test_member_add_htmx_returns_fragment_with_error_for_unknown_user(users, project, logged_in_client):
    resp = logged_in_client(users["owner"]).post("/projects/fraud/members/add/", {"username": "ghost", "role": "analyst"},
                                                 headers={"HX-Request": "true"})
    assert resp.status_code == 422 and b"No active user" in resp.content and b"<html" not in resp.content
    assert Membership.objects.filter(project=project).count() == 5


def test_member_add_htmx_success_renders_new_row(users, project, make_user, logged_in_client):
    make_user("zoe")
    resp = logged_in_client(users["owner"]).post("/projects/fraud/members/add/", {"username": "zoe", "role": "reviewer"},
                                                 headers={"HX-Request": "true"})
    assert resp.status_code == 200 and b'id="member-zoe"' in resp.content


def test_job_status_partial_stops_polling_when_final(users, project, logged_in_client):
    from apps.projects.services import job_create, job_fail

    job = job_create(kind="k", actor=users["owner"], project=project, title="Thing")
    client = logged_in_client(users["analyst"])
    assert client.get(f"/jobs/{job.pk}/", headers={"HX-Request": "true"}).status_code == 200
    job_fail(job_id=job.pk, error="boom")
    resp = client.get(f"/jobs/{job.pk}/", headers={"HX-Request": "true"})
    assert resp.status_code == 286 and b"boom" in resp.content
    assert logged_in_client(users["outsider"]).get(f"/jobs/{job.pk}/").status_code == 404


def test_audit_page_filters(users, project, logged_in_client):
    client = logged_in_client(users["owner"])
    client.post("/projects/fraud/settings/", {"name": "Fraud 3", "description": ""})
    resp = client.get("/projects/fraud/audit/?verb=project.update", headers={"HX-Request": "true"})
    assert b"project.update" in resp.content and b"project.create" not in resp.content


def test_token_page_shows_plaintext_once(users, logged_in_client):
    client = logged_in_client(users["owner"])
    resp = client.post("/account/tokens/", {"name": "laptop"}, headers={"HX-Request": "true"})
    assert b"slw_" in resp.content and b"will not be shown again" in resp.content
    again = client.get("/account/tokens/")
    assert b"will not be shown again" not in again.content and b"laptop" in again.content
    resp = client.post("/account/tokens/", {"name": ""}, headers={"HX-Request": "true"})
    assert resp.status_code == 422

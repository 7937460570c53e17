import json

import pytest

from apps.projects.models import AuditEvent, Membership, Project

pytestmark = pytest.mark.django_db


def test_create_project_via_api_returns_201_and_owner_role(make_user, api_client):
    client = api_client(make_user("alice"))
    resp = client.post("/api/v1/projects", {"name": "Churn", "description": "x"}, content_type="application/json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["slug"] == "churn" and resp.json()["role"] == "owner"


@pytest.mark.parametrize("payload,field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 121}, "name"),
    ({"name": 5}, "name"),
    ({"name": "ok", "slug": "Not A Slug"}, "slug"),
])
def test_invalid_payload_is_422_naming_the_field(make_user, api_client, payload, field):
    resp = api_client(make_user()).post("/api/v1/projects", payload, content_type="application/json")
    assert resp.status_code == 422, resp.content
    body = resp.json()
    assert body["detail"] and any(e["field"] == field for e in body["errors"]), body
    assert Project.objects.count() == 0


def test_duplicate_slug_is_409(project, users, api_client):
    resp = api_client(users["owner"]).post("/api/v1/projects", {"name": "Fraud", "slug": "fraud"},
                                           content_type="application/json")
    assert resp.status_code == 409 and "already exists" in resp.json()["detail"]


def test_malformed_json_is_400_json(make_user, api_client):
    resp = api_client(make_user()).post("/api/v1/projects", "{not json", content_type="application/json")
    assert resp.status_code == 400 and resp.json()["detail"].startswith("Malformed JSON")


def test_unknown_member_is_404_naming_username(project, users, api_client):
    resp = api_client(users["owner"]).post("/api/v1/projects/fraud/members", {"username": "ghost", "role": "analyst"},
                                           content_type="application/json")
    assert resp.status_code == 404
    assert resp.json()["errors"][0]["field"] == "username"
    assert Membership.objects.filter(project=project).count() == 5


def test_unknown_role_is_422(project, users, make_user, api_client):
    make_user("newcomer")
    resp = api_client(users["owner"]).post("/api/v1/projects/fraud/members", {"username": "newcomer", "role": "boss"},
                                           content_type="application/json")
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "role"


def test_missing_and_revoked_tokens_are_401(make_user, client):
    from apps.projects.services import api_token_create, api_token_revoke

    assert client.get("/api/v1/projects").status_code == 401
    user = make_user()
    token, plaintext = api_token_create(user=user, name="t")
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert client.get("/api/v1/projects", headers=headers).status_code == 200
    api_token_revoke(token=token, actor=user)
    resp = client.get("/api/v1/projects", headers=headers)
    assert resp.status_code == 401 and "detail" in resp.json()


def test_session_auth_requires_csrf_for_writes(make_user):
    from django.test import Client

    user = make_user()
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/v1/projects").status_code == 200
    resp = client.post("/api/v1/projects", {"name": "x"}, content_type="application/json")
    assert resp.status_code == 403
    assert not Project.objects.exists()


def test_pagination_and_search(make_user, api_client):
    from apps.projects.services import project_create

    user = make_user()
    for i in range(7):
        project_create(actor=user, name=f"P{i}")
    client = api_client(user)
    assert len(client.get("/api/v1/projects?limit=3").json()) == 3
    assert [p["name"] for p in client.get("/api/v1/projects?limit=3&offset=6").json()] == ["P6"]
    assert [p["name"] for p in client.get("/api/v1/projects?search=P3").json()] == ["P3"]


def test_audit_api_lists_events_with_filters(project, users, api_client):
    client = api_client(users["owner"])
    client.patch("/api/v1/projects/fraud", {"name": "Fraud 2"}, content_type="application/json")
    events = client.get("/api/v1/projects/fraud/audit?verb=project.update").json()
    assert len(events) == 1 and events[0]["actor"] == "owner"
    assert AuditEvent.objects.filter(project=project).count() >= 2


def test_unknown_api_path_is_json_404(make_user, api_client):
    resp = api_client(make_user()).get("/api/v1/nothing-here")
    assert resp.status_code == 404 and json.loads(resp.content)["detail"]


def test_openapi_and_docs_are_served(client):
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/api/docs").status_code == 302


@pytest.mark.django_db
def test_job_api_answers_a_jobs_progress_with_its_id_as_text(project, users, api_client):
    from apps.projects.services import job_create

    job = job_create(kind="test.job", actor=users["owner"], project=project, title="A job", params={},
                     task=None)
    resp = api_client(users["owner"]).get(f"/api/v1/jobs/{job.id}")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["id"] == str(job.id) and body["title"] == "A job" and body["progress"] == 0

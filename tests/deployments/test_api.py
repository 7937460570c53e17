"""The management API (through the mounted NinjaAPI) and the page/fragment views."""

import pytest

from .factories import deploy, make_ready_version


@pytest.mark.django_db
def test_api_deploy_list_pause_keys_and_log(api_client, project, users):
    v = make_ready_version(project=project, actor=users["owner"])
    c = api_client(users["data_scientist"])
    body = {"version_id": v.pk, "slug": "svc", "owner": "data_scientist"}
    first = c.post("/api/v1/projects/fraud/deployments", body, content_type="application/json")
    assert first.status_code == 409 and "approved promotion request" in first.json()["detail"]  # no unreviewed release
    c = api_client(users["owner"])  # a project owner may override, with a reason (audited)
    resp = c.post("/api/v1/projects/fraud/deployments", {**body, "override_reason": "hotfix while the reviewer is out"},
                  content_type="application/json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["status"] == "live" and resp.json()["predict_url"] == "/api/v1/deployments/svc/predict"
    dup = c.post("/api/v1/projects/fraud/deployments", {"version_id": v.pk, "slug": "svc", "owner": "data_scientist"},
                 content_type="application/json")
    assert dup.status_code == 409 and dup.json()["errors"][0]["field"] == "slug"
    assert [d["slug"] for d in c.get("/api/v1/projects/fraud/deployments").json()] == ["svc"]
    key = c.post("/api/v1/projects/fraud/deployments/svc/keys", {"name": "checkout"}, content_type="application/json")
    assert key.status_code == 201 and key.json()["key"].startswith("sdk_")
    paused = c.post("/api/v1/projects/fraud/deployments/svc/pause", {"reason": "x"}, content_type="application/json")
    assert paused.json()["status"] == "paused"
    assert c.get("/api/v1/projects/fraud/deployments/svc/predictions").json() == []
    analyst = api_client(users["analyst"])
    assert analyst.post("/api/v1/projects/fraud/deployments/svc/resume").status_code == 403
    assert api_client(users["outsider"]).get("/api/v1/projects/fraud/deployments").status_code == 404
    assert api_client().get("/api/v1/projects/fraud/deployments").status_code == 401


@pytest.mark.django_db
def test_openapi_documents_the_predict_endpoint(client):
    spec = client.get("/api/v1/openapi.json").json()
    assert "post" in spec["paths"]["/api/v1/deployments/{deployment}/predict"]


@pytest.mark.django_db
def test_pages_and_htmx_fragments(logged_in_client, project, users):
    v = make_ready_version(project=project, actor=users["owner"])
    deploy(project=project, actor=users["owner"], version=v)
    c = logged_in_client(users["analyst"])
    page = c.get("/projects/fraud/deployments/fraud-api/")
    assert page.status_code == 200 and b"curl -sS -X POST" in page.content and b"Create API key" not in page.content
    frag = c.get("/projects/fraud/deployments/fraud-api/predictions?offset=20", headers={"HX-Request": "true"})
    assert frag.status_code == 200 and frag.content.startswith(b'<div id="predictions"')
    assert c.get("/projects/fraud/deployments/").status_code == 200
    assert c.get("/projects/fraud/deployments/new").status_code == 403
    assert c.post("/projects/fraud/deployments/fraud-api/keys", {"name": "x"}).status_code == 403
    owner = logged_in_client(users["owner"])
    resp = owner.post("/projects/fraud/deployments/new", {"version": v.pk, "slug": "fraud-api", "owner": users["owner"].pk,
                                                         "input_mode": "inline", "max_batch": 10, "go_live": "on"})
    assert resp.status_code == 422 and b"is taken" in resp.content

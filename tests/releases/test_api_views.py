"""Promotion through the JSON API and the pages: status codes, bodies, self-approval refused on both."""

import json

import pytest

from apps.deployments.models import Deployment
from apps.releases.models import PromotionStatus
from apps.releases.services import promotion, shadow

from .factories import deploy, send_traffic, set_policy, versions

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def setup(project, users):
    weak, strong = versions(project, users["data_scientist"])
    dep, key = deploy(project, users["owner"], weak)
    set_policy(project, users["owner"], min_shadow_requests=0)
    return dep, key, weak, strong


def _post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def test_api_shadow_run_lifecycle(setup, users, api_client, client):
    dep, key, weak, strong = setup
    ds = api_client(users["data_scientist"])
    base = f"/api/v1/projects/fraud/deployments/{dep.slug}/shadow-runs"
    resp = _post(ds, base, {"candidate_id": strong.pk})
    assert resp.status_code == 201, resp.content
    run_id = resp.json()["id"]
    assert _post(ds, base, {"candidate_id": strong.pk}).status_code == 409
    bad = _post(ds, base, {"candidate_id": weak.pk})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "candidate"
    assert _post(api_client(users["analyst"]), base, {"candidate_id": strong.pk}).status_code == 403
    send_traffic(client, dep.slug, key, n=100)
    shadow.shadow_run_score_pending(run_id=run_id)
    got = ds.get(f"/api/v1/projects/fraud/shadow-runs/{run_id}").json()
    assert got["scored"] == 100 and got["comparison"]["n"] == 100
    assert [r["id"] for r in ds.get(base).json()] == [run_id]
    job = _post(ds, f"/api/v1/projects/fraud/shadow-runs/{run_id}/score", {})
    assert job.status_code == 202 and job.json()["job_id"]
    assert _post(ds, f"/api/v1/projects/fraud/shadow-runs/{run_id}/stop", {}).json()["status"] == "stopped"


def test_api_self_approval_refused_and_review_by_another_promotes(setup, users, api_client):
    dep, _, weak, strong = setup
    owner = api_client(users["owner"])
    resp = _post(owner, f"/api/v1/projects/fraud/deployments/{dep.slug}/promotions",
                 {"candidate_id": strong.pk, "justification": "Better offline"})
    assert resp.status_code == 201, resp.content
    req = resp.json()
    assert req["status"] == "open" and req["evidence"]["candidate"]["artifact_sha256"] == strong.artifact_sha256
    review = {"decision": "approve", "comment": "ok", "evidence_hash": req["evidence_hash"],
              "artifact_sha256": req["artifact_sha256"], "override_reason": "alerts not wired in this test"}
    url = f"/api/v1/projects/fraud/promotions/{req['id']}/reviews"
    own = _post(owner, url, review)
    assert own.status_code == 403 and "someone else" in own.json()["detail"]
    stale = _post(api_client(users["reviewer"]), url, {**review, "evidence_hash": "0" * 64})
    assert stale.status_code == 409 and stale.json()["errors"][0]["field"] == "evidence_hash"
    ok = _post(api_client(users["reviewer"]), url, review)
    assert ok.status_code == 201, ok.content
    assert ok.json()["status"] == "promoted" and ok.json()["reviews"][0]["counts"] is True
    assert Deployment.objects.get(pk=dep.pk).production_version_id == strong.pk
    rb = _post(api_client(users["reviewer"]), f"/api/v1/projects/fraud/deployments/{dep.slug}/rollback", {})
    assert rb.status_code == 403
    rb = _post(owner, f"/api/v1/projects/fraud/deployments/{dep.slug}/rollback", {"reason": "test"})
    assert rb.status_code == 200 and rb.json()["production_version_id"] == weak.pk


def test_api_inbox_list_and_policy(setup, users, api_client):
    dep, _, _, strong = setup
    promotion.promotion_request_open(deployment=dep, actor=users["data_scientist"], candidate=strong,
                                     justification="j")
    inbox = api_client(users["reviewer"]).get("/api/v1/promotions/inbox").json()
    assert [r["deployment"] for r in inbox] == [dep.slug]
    assert api_client(users["data_scientist"]).get("/api/v1/promotions/inbox").json() == []
    listed = api_client(users["analyst"]).get("/api/v1/projects/fraud/promotions?status=open").json()
    assert len(listed) == 1
    owner = api_client(users["owner"])
    put = owner.put("/api/v1/projects/fraud/promotion-policy", data=json.dumps({"approvals_required": 2}),
                    content_type="application/json")
    assert put.status_code == 200 and put.json()["approvals_required"] == 2
    bad = owner.put("/api/v1/projects/fraud/promotion-policy", data=json.dumps({"approvals_required": 0}),
                    content_type="application/json")
    assert bad.status_code == 422
    assert api_client(users["data_scientist"]).put("/api/v1/projects/fraud/promotion-policy", data="{}",
                                                   content_type="application/json").status_code == 403


def test_pages_render_and_self_approval_refused_in_the_view(setup, users, logged_in_client):
    dep, _, weak, strong = setup
    set_policy(dep.project, users["owner"], min_shadow_requests=10)  # the new run has scored nothing: a gate fails
    ds = logged_in_client(users["data_scientist"])
    page = ds.get(f"/projects/fraud/deployments/{dep.slug}/shadow/")
    assert page.status_code == 200 and b"Start a shadow run" in page.content
    resp = ds.post(f"/projects/fraud/deployments/{dep.slug}/shadow/", {"candidate": strong.pk, "backfill_hours": 1})
    assert resp.status_code == 302
    run = dep.shadow_runs.get()
    assert ds.get(f"/projects/fraud/deployments/{dep.slug}/shadow/{run.pk}/").status_code == 200
    frag = ds.get(f"/projects/fraud/deployments/{dep.slug}/shadow/{run.pk}/", headers={"HX-Request": "true"})
    assert frag.status_code == 200 and b'id="shadow-comparison"' in frag.content and b"<html" not in frag.content
    resp = ds.post(f"/projects/fraud/deployments/{dep.slug}/promote", {"candidate": strong.pk, "justification": ""})
    assert resp.status_code == 422 and b"This field is required" in resp.content
    resp = ds.post(f"/projects/fraud/deployments/{dep.slug}/promote", {"candidate": strong.pk,
                                                                       "justification": "Looks better"})
    assert resp.status_code == 302
    req = dep.promotion_requests.get()
    detail = ds.get(f"/projects/fraud/promotions/{req.pk}/")
    assert detail.status_code == 200 and b"you cannot review it" in detail.content
    # The requester posts an approval through the page anyway: refused (403), nothing changes.
    owner = logged_in_client(users["owner"])
    form = {"decision": "approve", "comment": "fine", "evidence_hash": req.evidence_hash,
            "artifact_sha256": req.artifact_sha256, "override_reason": "ok"}
    refused = ds.post(f"/projects/fraud/promotions/{req.pk}/review", form, headers={"HX-Request": "true"})
    assert refused.status_code == 403
    req.refresh_from_db()
    assert req.status == PromotionStatus.OPEN and not req.reviews.exists()
    # A reviewer without an override reason gets the form back with a 422 naming the field.
    reviewer = logged_in_client(users["reviewer"])
    no_reason = reviewer.post(f"/projects/fraud/promotions/{req.pk}/review", {**form, "override_reason": ""},
                              headers={"HX-Request": "true"})
    assert no_reason.status_code == 422 and b"override reason" in no_reason.content
    done = reviewer.post(f"/projects/fraud/promotions/{req.pk}/review", form, headers={"HX-Request": "true"})
    assert done.status_code == 200 and b"Approved and promoted" in done.content
    assert Deployment.objects.get(pk=dep.pk).production_version_id == strong.pk
    releases = owner.get(f"/projects/fraud/deployments/{dep.slug}/releases")
    assert releases.status_code == 200 and b"Roll back to v1" in releases.content
    assert owner.post(f"/projects/fraud/deployments/{dep.slug}/releases", {"reason": "x"}).status_code == 302
    assert Deployment.objects.get(pk=dep.pk).production_version_id == weak.pk
    assert reviewer.get("/promotions/inbox").status_code == 200
    assert owner.get("/projects/fraud/promotions/policy").status_code == 200
    assert ds.get("/projects/fraud/promotions/policy").status_code == 403


def test_create_form_and_api_refuse_a_first_version_without_request_unless_owner_overrides(setup, users,
                                                                                          logged_in_client,
                                                                                          api_client):
    dep, _, weak, strong = setup
    promotion.promotion_request_open(deployment=dep, actor=users["data_scientist"], candidate=strong,
                                     justification="the project now promotes by request")
    form = {"version": weak.pk, "slug": "next-api", "owner": users["owner"].pk, "input_mode": "inline",
            "max_batch": 100, "go_live": "on"}
    page = logged_in_client(users["data_scientist"]).post("/projects/fraud/deployments/new", form)
    assert page.status_code == 422 and b"promotion request" in page.content
    body = {"version_id": weak.pk, "slug": "next-api", "owner": "owner", "go_live": True}
    assert _post(api_client(users["data_scientist"]), "/api/v1/projects/fraud/deployments", body).status_code == 409
    ok = _post(api_client(users["owner"]), "/api/v1/projects/fraud/deployments",
               {**body, "override_reason": "hotfix, reviewed in the incident channel"})
    assert ok.status_code == 201, ok.content

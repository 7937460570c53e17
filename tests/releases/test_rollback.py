"""Rollback is an emergency stop: it goes back along the release history (v3 → v2 → v1) and pauses the
canary and the shadow runs of other candidates, each recorded on the deployment's timeline; a paused
canary or shadow run can be resumed (also recorded)."""

import json

import pytest

from apps.common.errors import Conflict
from apps.deployments.models import Canary, DeploymentEvent
from apps.deployments.services import deployment_version_set
from apps.releases.models import ShadowRun, ShadowStatus
from apps.releases.services import rollout, shadow

from .factories import deploy, frame, versions

pytestmark = pytest.mark.django_db


def test_rollback_walks_back_v3_v2_v1_and_pauses_the_canary_and_shadow_runs_of_other_candidates(
        project, users, client):
    owner = users["owner"]
    v1, v2, v3, v4 = versions(project, users["data_scientist"], kinds=("weak", "strong", "weak", "strong"))
    dep, key = deploy(project, owner, v1)
    for v in (v2, v3):
        dep = deployment_version_set(deployment=dep, actor=owner, version=v, kind=DeploymentEvent.Kind.PROMOTE,
                                     reason="promoted")
    rollout.canary_set(deployment=dep, actor=owner, candidate=v4, percent=30)
    run = shadow.shadow_run_start(deployment=dep, actor=owner, candidate=v4, backfill_hours=0)
    assert rollout.rollback_target(deployment=dep) == v2

    dep = rollout.deployment_rollback(deployment=dep, actor=owner, reason="p99 regression")
    assert dep.production_version_id == v2.pk
    assert Canary.objects.get(deployment=dep).is_paused  # kept with its settings, answering nothing
    assert ShadowRun.objects.get(pk=run.pk).status == ShadowStatus.PAUSED
    reasons = list(dep.events.values_list("reason", flat=True))
    assert any("Canary of" in r and "paused by the emergency rollback" in r for r in reasons)
    assert any(f"Shadow run #{run.pk}" in r and "paused by the emergency rollback" in r for r in reasons)
    X, _, _ = frame(n=1, offset=3000)
    for _ in range(40):  # nothing but the rolled-back-to version answers now
        resp = client.generic("POST", f"/api/v1/deployments/{dep.slug}/predict",
                              json.dumps({"instances": X.to_dict(orient="records")}),
                              content_type="application/json", headers={"Authorization": f"Bearer {key}"})
        assert resp.json()["model_version"]["id"] == v2.pk

    assert rollout.rollback_target(deployment=dep) == v1  # further back, not to v3
    dep = rollout.deployment_rollback(deployment=dep, actor=owner)
    assert dep.production_version_id == v1.pk
    with pytest.raises(Conflict, match="no previous production version"):
        rollout.deployment_rollback(deployment=dep, actor=owner)
    # A later promotion starts a new history on top of v1.
    dep = deployment_version_set(deployment=dep, actor=owner, version=v4, kind=DeploymentEvent.Kind.PROMOTE)
    assert rollout.rollback_target(deployment=dep) == v1


def test_paused_canary_and_shadow_run_resume_recorded_on_the_timeline_and_serve_again(project, users, client):
    """After the rollback, the owner resumes the canary (it answers again) and the shadow run (it scores
    again, from its cursor); a reviewer may not; resuming what is not paused is a conflict."""
    from apps.common.errors import PermissionDenied
    from apps.projects.models import AuditEvent
    from apps.releases.services.shadow import shadow_run_score_pending

    owner = users["owner"]
    v1, v2, v3 = versions(project, users["data_scientist"], kinds=("weak", "strong", "weak"))
    dep, key = deploy(project, owner, v1)
    dep = deployment_version_set(deployment=dep, actor=owner, version=v2, kind=DeploymentEvent.Kind.PROMOTE)
    rollout.canary_set(deployment=dep, actor=owner, candidate=v3, percent=50)
    run = shadow.shadow_run_start(deployment=dep, actor=owner, candidate=v3, backfill_hours=0)
    dep = rollout.deployment_rollback(deployment=dep, actor=owner, reason="errors")
    assert dep.production_version_id == v1.pk
    X, _, _ = frame(n=1, offset=3000)

    def answered_by() -> set[int]:
        seen = set()
        for _ in range(30):
            resp = client.generic("POST", f"/api/v1/deployments/{dep.slug}/predict",
                                  json.dumps({"instances": X.to_dict(orient="records")}),
                                  content_type="application/json", headers={"Authorization": f"Bearer {key}"})
            seen.add(resp.json()["model_version"]["id"])
        return seen

    assert answered_by() == {v1.pk}  # paused: the canary answers nothing
    assert shadow_run_score_pending(run_id=run.pk) == 0  # paused: nothing scored
    with pytest.raises(PermissionDenied):
        rollout.canary_resume(deployment=dep, actor=users["reviewer"])
    with pytest.raises(PermissionDenied):
        shadow.shadow_run_resume(run=run, actor=users["reviewer"])

    rollout.canary_resume(deployment=dep, actor=owner)
    assert not Canary.objects.get(deployment=dep).is_paused
    from apps.deployments import serving

    serving.CACHE.clear()
    assert answered_by() == {v1.pk, v3.pk}  # 50 %: both sides answer again
    run = shadow.shadow_run_resume(run=run, actor=owner)
    assert ShadowRun.objects.get(pk=run.pk).status == ShadowStatus.ACTIVE
    from apps.deployments import logpipe

    logpipe.drain()
    assert shadow_run_score_pending(run_id=run.pk) > 0  # the traffic logged meanwhile is scored
    reasons = list(dep.events.values_list("reason", flat=True))
    assert any(r.startswith("Canary resumed: 50% of requests") for r in reasons)
    assert any(r == f"Shadow run #{run.pk} of {v3} resumed" for r in reasons)
    verbs = set(AuditEvent.objects.filter(project=project).values_list("verb", flat=True))
    assert {"deployment.rollback_pause_candidates", "deployment.canary_resume", "shadow.resume"} <= verbs
    with pytest.raises(Conflict, match="no paused canary"):
        rollout.canary_resume(deployment=dep, actor=owner)
    with pytest.raises(Conflict, match="not paused"):
        shadow.shadow_run_resume(run=run, actor=owner)


def test_releases_page_shows_the_paused_canary_and_resumes_it(project, users, client):
    owner = users["owner"]
    v1, v2, v3 = versions(project, users["data_scientist"], kinds=("weak", "strong", "weak"))
    dep, _ = deploy(project, owner, v1)
    dep = deployment_version_set(deployment=dep, actor=owner, version=v2, kind=DeploymentEvent.Kind.PROMOTE)
    rollout.canary_set(deployment=dep, actor=owner, candidate=v3, percent=20)
    run = shadow.shadow_run_start(deployment=dep, actor=owner, candidate=v3, backfill_hours=0)
    rollout.deployment_rollback(deployment=dep, actor=owner)
    client.force_login(owner)
    base = f"/projects/{project.slug}/deployments/{dep.slug}"
    page = client.get(f"{base}/releases").content.decode()
    assert 'id="canary-paused"' in page and "Resume canary" in page
    assert "paused by the emergency rollback" in page  # the timeline shows the pauses
    detail = client.get(f"{base}/shadow/{run.pk}/").content.decode()
    assert 'id="shadow-paused"' in detail and 'id="shadow-resume"' in detail
    client.force_login(users["reviewer"])
    assert client.post(f"{base}/canary/resume").status_code == 403
    client.force_login(owner)
    assert client.post(f"{base}/canary/resume").status_code == 302
    assert client.post(f"{base}/shadow/{run.pk}/resume").status_code == 302
    page = client.get(f"{base}/releases").content.decode()
    assert 'id="canary-paused"' not in page and "Canary resumed" in page
    assert ShadowRun.objects.get(pk=run.pk).status == ShadowStatus.ACTIVE


def test_api_resumes_a_paused_canary_and_shadow_run(project, users, api_client):
    owner = users["owner"]
    v1, v2, v3 = versions(project, users["data_scientist"], kinds=("weak", "strong", "weak"))
    dep, _ = deploy(project, owner, v1)
    dep = deployment_version_set(deployment=dep, actor=owner, version=v2, kind=DeploymentEvent.Kind.PROMOTE)
    rollout.canary_set(deployment=dep, actor=owner, candidate=v3, percent=10)
    run = shadow.shadow_run_start(deployment=dep, actor=owner, candidate=v3, backfill_hours=0)
    base = f"/api/v1/projects/{project.slug}"
    api = api_client(owner)
    assert api.post(f"{base}/deployments/{dep.slug}/canary/resume").status_code == 409  # not paused
    assert api.post(f"{base}/deployments/{dep.slug}/rollback", data="{}",
                    content_type="application/json").status_code == 200
    assert api.get(f"{base}/shadow-runs/{run.pk}").json()["status"] == "paused"
    assert api_client(users["reviewer"]).post(f"{base}/shadow-runs/{run.pk}/resume").status_code == 403
    resumed = api.post(f"{base}/deployments/{dep.slug}/canary/resume")
    assert resumed.status_code == 200, resumed.content
    assert resumed.json() == {"deployment": dep.slug, "candidate_id": v3.pk, "percent": 10.0, "sticky_by": "request",
                              "paused": False}
    run_out = api.post(f"{base}/shadow-runs/{run.pk}/resume")
    assert run_out.status_code == 200 and run_out.json()["status"] == "active"
    again = api.post(f"{base}/shadow-runs/{run.pk}/resume")
    assert again.status_code == 409 and "not paused" in again.json()["detail"]

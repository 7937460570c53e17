"""End to end in a real Celery worker: traffic is logged through the predict endpoint, candidates shadow
it in the worker, outcomes arrive through monitoring's API, and the comparison shows a significant
improvement for a better candidate and none for an identical one. Then an approval promotes and the
serving path answers with the new version."""

import json

import pytest

from apps.releases.models import ShadowRun
from apps.releases.services import promotion, shadow
from tests.conftest import wait_for, wait_for_job

from .factories import MODEL, deploy, frame, post_outcomes, send_traffic, set_policy, versions

pytestmark = [pytest.mark.django_db(transaction=True)]


def _twin_of_weak(project, actor, weak):
    """A version whose predictions equal the weak one's (same fit, a different but inert parameter)."""
    from sklearn.linear_model import LogisticRegression

    from tests.registry.factories import register_ready_version

    X, y, names = frame()
    Xw = X.iloc[:600].copy()
    for col in ("f1", "f2", "f3"):
        Xw[col] = 0.0
    est = LogisticRegression(max_iter=777).fit(Xw, y[:600])
    return register_ready_version(project, actor, est, X.iloc[600:], y[600:], names, "binary_classification",
                                  model_name=MODEL, model=weak.model)


def test_shadow_in_worker_better_candidate_is_significant_identical_is_not(celery_worker, project, users, client,
                                                                            api_client):
    weak, strong = versions(project, users["data_scientist"])
    twin = _twin_of_weak(project, users["data_scientist"], weak)
    dep, key = deploy(project, users["owner"], weak)
    set_policy(project, users["owner"], min_labelled=200, min_shadow_requests=300)
    pairs = send_traffic(client, dep.slug, key, n=400)

    ds = users["data_scientist"]
    runs = [shadow.shadow_run_start(deployment=dep, actor=ds, candidate=c, backfill_hours=1) for c in (strong, twin)]
    # The worker scores the logged traffic right after the start (no request path involved).
    for run in runs:
        wait_for(lambda r=run: ShadowRun.objects.get(pk=r.pk).scored == 400, timeout=60,
                 message=f"shadow run {run.pk} to score the logged traffic")
    before = ShadowRun.objects.get(pk=runs[0].pk).comparison
    assert before["labelled"] == 0 and before["verdict"]["status"] == "insufficient"
    assert before["agreement"]["n"] == 400

    post_outcomes(api_client(users["analyst"]), dep.slug, pairs)
    # On demand (a Job in the worker) for one run, the beat task for the other.
    job = shadow.shadow_run_score_request(run=runs[0], actor=ds)
    assert wait_for_job(job.pk).status == "succeeded"
    from portal.celery import app

    app.send_task("workers.releases.shadow_tick")
    wait_for(lambda: ShadowRun.objects.get(pk=runs[1].pk).comparison.get("labelled") == 400, timeout=60,
             message="the beat tick to compare the identical candidate with outcomes")

    better = ShadowRun.objects.get(pk=runs[0].pk).comparison
    same = ShadowRun.objects.get(pk=runs[1].pk).comparison
    assert better["labelled"] == 400
    assert better["verdict"]["status"] == "better", better["verdict"]
    assert better["mcnemar"]["p_value"] < 0.05 and better["bootstrap"]["low"] > 0
    assert same["verdict"]["status"] == "no_difference", same["verdict"]
    assert same["agreement"]["rate"] == 1.0 and same["mcnemar"]["b"] == same["mcnemar"]["c"] == 0

    # Promotion: the evidence carries this comparison; another reviewer approves; serving switches.
    req = promotion.promotion_request_open(deployment=dep, actor=ds, candidate=strong, justification="Shadow says so")
    assert req.gates_passed, req.evidence["gates"]
    assert req.evidence["shadow"]["comparison"]["verdict"]["status"] == "better"
    promotion.promotion_request_review(request=req, reviewer=users["reviewer"], decision="approve", comment="ok",
                                       evidence_hash=req.evidence_hash, artifact_sha256=req.artifact_sha256)
    row = frame(n=1, offset=3000)[0].iloc[0].to_dict()

    def served_version():
        resp = client.generic("POST", f"/api/v1/deployments/{dep.slug}/predict", json.dumps({"instances": [row]}),
                              content_type="application/json", headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 200
        return resp.json()["model_version"]["id"]

    assert wait_for(lambda: served_version() == strong.pk, timeout=5, message="serving to switch to the candidate")

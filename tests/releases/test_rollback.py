"""Rollback is an emergency stop: it goes back along the release history (v3 → v2 → v1) and stops the
canary and the shadow runs of other candidates, each recorded on the deployment's timeline."""

import json

import pytest

from apps.common.errors import Conflict
from apps.deployments.models import Canary, DeploymentEvent
from apps.deployments.services import deployment_version_set
from apps.releases.models import ShadowRun, ShadowStatus
from apps.releases.services import rollout, shadow

from .factories import deploy, frame, versions

pytestmark = pytest.mark.django_db


def test_rollback_walks_back_v3_v2_v1_and_stops_the_canary_and_shadow_runs_of_other_candidates(
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
    assert not Canary.objects.filter(deployment=dep).exists()
    assert ShadowRun.objects.get(pk=run.pk).status == ShadowStatus.STOPPED
    reasons = list(dep.events.values_list("reason", flat=True))
    assert any("Canary of" in r and "stopped by the emergency rollback" in r for r in reasons)
    assert any(f"Shadow run #{run.pk}" in r and "emergency rollback" in r for r in reasons)
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

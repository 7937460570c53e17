"""End to end in real Celery workers: traffic drifts and accuracy drops → the monitoring tick (through the
broker) opens an alert → the retraining tick fires the policy exactly once → a training job on the
``training`` queue refits the production model on a point-in-time training set built from outcome labels
→ the registry's worker validates the new version → a shadow run scores production traffic → a
promotion request opens with the evidence and waits for a reviewer. Nothing is promoted."""

import time
from datetime import timedelta

import pytest

from apps.monitoring.models import Alert
from apps.projects.services import project_settings_update
from apps.registry.models import ModelVersion
from apps.training.models import FiringStatus, PolicyFiring
from tests.conftest import wait_for
from tests.training.retraining_factories import (
    accuracy_rule,
    degrading_world,
    log_fresh_traffic,
    log_traffic,
    monitor,
    post_outcomes,
    require_promotion,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def beat(*tasks):
    """Emulate celery beat: send the periodic tasks through the broker (a real worker runs them)."""
    from portal.celery import app

    for name, args in tasks:
        app.send_task(name, args=args)


def test_degradation_fires_the_policy_once_and_ends_in_an_open_promotion_request(celery_worker, project, users):
    from apps.training.services import retraining

    require_promotion()
    w = degrading_world(project=project, owner=users["owner"])
    project_settings_update(project=project, actor=users["owner"], values={"promotion": {"min_shadow_requests": 200}})
    log_traffic(w)  # 47 h of logged predictions, the newest hours with drifted n_tx
    post_outcomes(w, users["analyst"])  # accuracy ~0.5 under the new concept
    monitor(w)
    rule = accuracy_rule(w, users["analyst"])
    policy = retraining.retraining_policy_save(
        deployment=w.deployment, actor=users["data_scientist"], cooldown_minutes=120, max_firings=2,
        max_firings_period_hours=24, min_new_labels=500,
        triggers=[{"kind": "alert_rule", "rule_id": rule.pk},
                  {"kind": "metric", "metric": "drift:n_tx", "comparator": "gt", "threshold": 0.1, "windows": 2}])

    beat(("workers.monitoring.monitoring_tick", [(w.end + timedelta(minutes=1)).isoformat()]))
    alert = wait_for(lambda: Alert.objects.filter(deployment=w.deployment).first(), message="the accuracy alert")
    assert alert.value < 0.8

    fed = []

    def advanced():
        f = PolicyFiring.objects.filter(policy=policy, fired_at__isnull=False).first()
        if f is not None and f.shadow_run_id and not fed:
            # The shadow run never scores the traffic that trained the candidate (before its registration):
            # only requests answered from now on count.
            fed.append(log_fresh_traffic(w, n=240))
        beat(("workers.retraining.retraining_tick", []), ("workers.releases.shadow_tick", []))
        time.sleep(1.0)
        f = PolicyFiring.objects.filter(policy=policy, fired_at__isnull=False).first()
        return f if f and f.status in (FiringStatus.AWAITING_REVIEW, FiringStatus.FAILED, FiringStatus.STOPPED) else None

    firing = wait_for(advanced, timeout=240, interval=0.1, message="the chain to reach the promotion request")
    assert firing.status == FiringStatus.AWAITING_REVIEW, firing.outcome

    # Exactly one firing although two triggers were active and the tick ran many times.
    fired = PolicyFiring.objects.filter(policy=policy, fired_at__isnull=False)
    assert fired.count() == 1 and firing.trigger == "alert_rule" and firing.alert_id == alert.pk
    other = PolicyFiring.objects.get(policy=policy, trigger="metric")
    assert other.status == FiringStatus.SKIPPED
    assert "in progress" in other.outcome or "cooldown" in other.outcome

    # The job trained on a point-in-time training set of outcome labels, in the training queue's worker.
    tj = firing.training_job
    assert tj.job.status == "succeeded" and tj.label_source == "outcomes" and tj.training_set.is_ready
    assert tj.metrics["candidate"]["accuracy"] > tj.metrics["parent"]["accuracy"] + 0.3
    version = ModelVersion.objects.get(pk=firing.version_id)
    assert version.status == "ready" and version.parent_id == w.parent.pk
    assert version.training_set_id == tj.training_set_id and version.code_ref == f"slipway:training-job:{tj.pk}"

    # Shadow ran on production traffic; the promotion request is open with the evidence, for a reviewer.
    from apps.releases.models import PromotionRequest, ShadowRun

    run = ShadowRun.objects.get(pk=firing.shadow_run_id)
    assert run.candidate_id == version.pk and run.scored >= 200
    assert run.since == version.created_at  # the backfill starts at the candidate's training-data cut-off
    from apps.releases.models import ShadowPrediction

    assert not ShadowPrediction.objects.filter(run=run, created_at__lte=version.created_at).exists()
    req = PromotionRequest.objects.get(pk=firing.promotion_request_id)
    assert req.status == "open" and req.decided_by is None and req.candidate_id == version.pk
    assert req.evidence["shadow"]["run_id"] == run.pk and req.evidence["candidate"]
    assert "Training job" in req.justification and "never promotes" in req.justification
    from apps.training.selectors import promotion_request_statuses

    assert promotion_request_statuses(firings=[firing]) == {req.pk: "open"}
    w.deployment.refresh_from_db()
    assert w.deployment.production_version_id == w.parent.pk  # a reviewer decides, not the policy
    steps = [s["step"] for s in firing.steps]
    assert steps == ["fire", "train", "registered", "validated", "shadow", "promotion"]

"""Retraining policies: triggers, episodes, guards and the chain, run synchronously through the services
(the same bodies the beat tick and the workers run). The real-worker test is test_retraining_worker.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.common.errors import InvalidInput, PermissionDenied
from apps.monitoring.models import Alert
from apps.monitoring.services import monitoring_tick
from apps.projects.services import job_run
from apps.registry.models import ModelVersion
from apps.training.models import FiringStatus, PolicyFiring, TrainingJob
from apps.training.services import jobs as training
from apps.training.services import retraining
from tests.registry.factories import run_validation_now
from tests.training.retraining_factories import (
    accuracy_rule,
    degrading_world,
    log_traffic,
    monitor,
    post_outcomes,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(project, users):
    w = degrading_world(project=project, owner=users["owner"])
    log_traffic(w)
    monitor(w)
    return w


def _policy(w, actor, rule=None, **kw):
    triggers = kw.pop("triggers", None) or [{"kind": "alert_rule", "rule_id": rule.pk}]
    defaults = {"cooldown_minutes": 60, "max_firings": 3, "max_firings_period_hours": 24, "min_new_labels": 500}
    return retraining.retraining_policy_save(deployment=w.deployment, actor=actor, triggers=triggers,
                                             **{**defaults, **kw})


def _degrade(w, users):
    """Outcomes arrive, hourly windows are computed: realized accuracy ~0.5 < 0.8 opens the alert."""
    post_outcomes(w, users["analyst"])
    monitoring_tick(now=w.end + timedelta(minutes=1))
    return Alert.objects.get(deployment=w.deployment)


def _train(firing):
    tj = firing.training_job
    job_run(job_id=tj.job_id, body=lambda job: training.training_job_run(job=job))
    return TrainingJob.objects.get(pk=tj.pk)


def test_policy_fires_once_per_alert_episode_and_trains_on_outcome_labels(world, project, users):
    rule = accuracy_rule(world, users["analyst"])
    policy = _policy(world, users["data_scientist"], rule)
    alert = _degrade(world, users)
    assert alert.value < 0.8
    for _ in range(3):  # beat ticks every 30 s while the alert stays open: one firing, not three
        retraining.retraining_tick()
    firing = PolicyFiring.objects.get(policy=policy)
    assert firing.status == FiringStatus.TRAINING and firing.episode_key == f"alert:{alert.pk}"
    assert firing.alert_id == alert.pk and "Alert" in firing.reason and firing.new_labels == 2820
    tj = firing.training_job
    assert tj.label_source == "outcomes" and tj.label_rows == 2820 and tj.trigger == "policy"
    assert tj.requested_by == users["owner"]  # acts for the deployment's owner
    assert tj.parent_version_id == world.parent.pk
    tj = _train(firing)
    assert tj.job.status == "succeeded", tj.job.error
    assert tj.metrics["candidate"]["accuracy"] > 0.95 > tj.metrics["parent"]["accuracy"]
    # Point-in-time: each outcome's features are those available when the prediction was made.
    import polars as pl

    from apps.common.storage import artifact_store

    ts = pl.read_parquet(artifact_store().path(tj.training_set.artifact_key))
    for row in ts.select(["customer_id", "event_timestamp", "amount", "n_tx"]).iter_rows(named=True):
        hour = int((row["event_timestamp"] - world.start).total_seconds() // 3600)
        e = int(row["customer_id"][1:])
        assert (row["n_tx"], row["amount"]) == (hour - 1, 100.0 * e + hour - 1)

    retraining.retraining_tick()  # the chain: the registry validates the new version
    firing.refresh_from_db()
    assert firing.status == FiringStatus.VALIDATING and firing.version_id == tj.result_version_id
    run_validation_now(firing.version)
    retraining.retraining_tick()
    firing.refresh_from_db()
    # After validation the chain starts a shadow run (or stops, saying why, where shadow runs are missing).
    assert firing.status in (FiringStatus.SHADOW, FiringStatus.AWAITING_REVIEW, FiringStatus.STOPPED)
    if firing.status == FiringStatus.STOPPED:
        assert "shadow runs are not available" in firing.outcome
    assert [s["step"] for s in firing.steps][:4] == ["fire", "train", "registered", "validated"]
    assert world.deployment.__class__.objects.get(pk=world.deployment.pk).production_version_id == world.parent.pk
    verbs = set(project.audit_events.values_list("verb", flat=True))
    assert {"retraining.policy_create", "retraining.fire", "retraining.train", "retraining.registered",
            "retraining.validated"} <= verbs


def test_policy_with_too_few_new_labels_does_not_fire_and_says_why(world, users):
    rule = accuracy_rule(world, users["analyst"])
    policy = _policy(world, users["owner"], rule, min_new_labels=10_000)
    _degrade(world, users)
    retraining.retraining_tick()
    retraining.retraining_tick()
    firing = PolicyFiring.objects.get(policy=policy)
    assert firing.status == FiringStatus.SKIPPED and firing.fired_at is None and firing.checks == 2
    assert firing.outcome == ("Did not fire: only 2,820 new labelled row(s) arrived since the last retraining; "
                              "the policy needs at least 10,000")
    assert not TrainingJob.objects.exists()
    assert policy.deployment.project.audit_events.filter(verb="retraining.skip").count() == 1  # not once per tick
    # More labels later in the same episode: lowering the bar lets this episode fire, once.
    _policy(world, users["owner"], rule, min_new_labels=1000)
    retraining.retraining_tick()
    firing.refresh_from_db()
    assert firing.status == FiringStatus.TRAINING and TrainingJob.objects.count() == 1


def test_cooldown_and_max_frequency_are_respected_and_recorded(world, users):
    rule = accuracy_rule(world, users["analyst"])
    policy = _policy(world, users["owner"], rule, cooldown_minutes=120,
                     triggers=[{"kind": "alert_rule", "rule_id": rule.pk},
                               {"kind": "metric", "metric": "realized_accuracy", "comparator": "lt",
                                "threshold": 0.8, "windows": 2}])
    _degrade(world, users)
    retraining.retraining_tick()
    firings = {f.trigger: f for f in PolicyFiring.objects.filter(policy=policy)}
    assert firings["alert_rule"].status == FiringStatus.TRAINING
    assert firings["metric"].status == FiringStatus.SKIPPED
    assert "still in progress" in firings["metric"].outcome
    PolicyFiring.objects.filter(pk=firings["alert_rule"].pk).update(status=FiringStatus.FAILED)
    retraining.retraining_tick()
    metric = PolicyFiring.objects.get(pk=firings["metric"].pk)
    assert metric.status == FiringStatus.SKIPPED and "cooldown" in metric.outcome
    # After the cooldown, the frequency cap (1 per 24 h) still says no.
    policy.cooldown_minutes, policy.max_firings = 0, 1
    policy.save()
    retraining.retraining_tick()
    metric.refresh_from_db()
    assert "already fired 1 time(s) in the last 24 h (maximum 1)" in metric.outcome
    assert TrainingJob.objects.count() == 1


def test_retrain_now_takes_the_same_path_and_guards(world, users):
    rule = accuracy_rule(world, users["analyst"])
    policy = _policy(world, users["owner"], rule, min_new_labels=100)
    f = retraining.retraining_retrain_now(policy=policy, actor=users["owner"], reason="new data")
    assert f.status == FiringStatus.SKIPPED and "only 0 new labelled row(s)" in f.outcome
    post_outcomes(world, users["analyst"])
    f = retraining.retraining_retrain_now(policy=policy, actor=users["data_scientist"], reason="new data")
    assert f.status == FiringStatus.TRAINING and f.trigger == "manual" and "new data" in f.reason
    assert f.training_job.requested_by == users["data_scientist"]
    again = retraining.retraining_retrain_now(policy=policy, actor=users["owner"])
    assert again.status == FiringStatus.SKIPPED and "still in progress" in again.outcome
    with pytest.raises(PermissionDenied):
        retraining.retraining_retrain_now(policy=policy, actor=users["analyst"])


def test_failed_training_fails_the_firing_with_its_reason(world, users):
    rule = accuracy_rule(world, users["analyst"])
    policy = _policy(world, users["owner"], rule, min_new_labels=10)
    # Only the first 10 h of outcomes: every label is 0 (n_tx < 20): one class, training must fail.
    post_outcomes(world, users["analyst"], limit=600)
    f = retraining.retraining_retrain_now(policy=policy, actor=users["owner"])
    _train(f)
    retraining.retraining_tick()
    f.refresh_from_db()
    assert f.status == FiringStatus.FAILED and "single class" in f.outcome
    assert ModelVersion.objects.filter(model=world.parent.model).count() == 1


def test_policy_save_validates_triggers_and_permissions(world, users):
    dep = world.deployment
    with pytest.raises(PermissionDenied):
        retraining.retraining_policy_save(deployment=dep, actor=users["analyst"], triggers=[])
    cases = [([], "at least one trigger"), ([{"kind": "alert_rule", "rule_id": 999}], "choose an alert rule"),
             ([{"kind": "metric", "metric": "nope", "comparator": "lt", "threshold": 1}], "Unknown metric"),
             ([{"kind": "metric", "metric": "share_drifted", "comparator": "xx", "threshold": 1}], "comparator"),
             ([{"kind": "cron"}], "kind must be")]
    for triggers, message in cases:
        with pytest.raises(InvalidInput, match=message):
            retraining.retraining_policy_save(deployment=dep, actor=users["owner"], triggers=triggers)
    with pytest.raises(InvalidInput, match="between 0.05 and 0.5"):
        retraining.retraining_policy_save(deployment=dep, actor=users["owner"], holdout_fraction=0.9,
                                          triggers=[{"kind": "metric", "metric": "share_drifted",
                                                     "comparator": "gt", "threshold": 0.5}])
    p = retraining.retraining_policy_save(deployment=dep, actor=users["owner"],
                                          triggers=[{"kind": "metric", "metric": "drift:n_tx", "comparator": "gt",
                                                     "threshold": 0.3, "windows": "2"}])
    assert p.triggers == [{"kind": "metric", "metric": "drift:n_tx", "comparator": "gt", "threshold": 0.3,
                           "windows": 2}]


def test_metric_trigger_episode_is_the_breaching_streak(world, users):
    policy = _policy(world, users["owner"], triggers=[{"kind": "metric", "metric": "drift:n_tx", "comparator": "gt",
                                                       "threshold": 0.1, "windows": 3}], min_new_labels=0)
    post_outcomes(world, users["analyst"])
    monitoring_tick(now=world.end + timedelta(minutes=1))
    retraining.retraining_tick(now=timezone.now())
    retraining.retraining_tick(now=timezone.now())
    f = PolicyFiring.objects.get(policy=policy)
    assert f.trigger == "metric" and f.episode_key.startswith("metric:0:") and "drift:n_tx" in f.reason
    assert f.status == FiringStatus.TRAINING

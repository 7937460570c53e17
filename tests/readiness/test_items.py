"""Each readiness item from known scenarios: its pass, warn and fail case, set up with the owning apps'
real services (see scenarios.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.readiness.scoring import FAIL, PASS, WARN

from . import scenarios as s

pytestmark = pytest.mark.django_db


# --- handoff -----------------------------------------------------------------------------------------


def test_lead_time_pass_when_deployed_soon_after_upload(project, users):
    v = s.ready_version(project, users["owner"])
    s.uploaded_days_ago(v, 3)
    s.deploy(project, users["owner"], v, slug="churn-api")
    item = s.assess(project, "handoff.lead_time")
    assert item.status == PASS
    assert item.figure.startswith("median 3.0 days") and "churn-api" in item.detail
    assert item.evidence_url.endswith("/deployments/churn-api/")


def test_lead_time_warn_between_two_and_six_weeks(project, users):
    v = s.ready_version(project, users["owner"])
    s.uploaded_days_ago(v, 20)
    s.deploy(project, users["owner"], v, slug="churn-api")
    assert s.assess(project, "handoff.lead_time").status == WARN


def test_lead_time_fail_when_slow_or_nothing_reached_production(project, users):
    v = s.ready_version(project, users["owner"])
    assert s.assess(project, "handoff.lead_time").status == FAIL
    # a deployment created paused (not serving) does not count as reaching production
    s.deploy(project, users["owner"], v, slug="paused-api", owner=None, go_live=False)
    assert s.assess(project, "handoff.lead_time").figure == "no version has reached production"
    v2 = s.ready_version(project, users["owner"], name="other")
    s.uploaded_days_ago(v2, 60)
    s.deploy(project, users["owner"], v2, slug="slow-api")
    item = s.assess(project, "handoff.lead_time")
    assert item.status == FAIL and item.value > 59 * 86400


def test_lead_time_counts_a_version_change_per_deployment(project, users):
    from apps.deployments.services import deployment_version_set

    v1 = s.ready_version(project, users["owner"])
    dep = s.deploy(project, users["owner"], v1, slug="churn-api")
    v2 = s.ready_version(project, users["owner"])
    s.uploaded_days_ago(v2, 10)
    deployment_version_set(deployment=dep, actor=users["owner"], version=v2, reason="better")
    item = s.assess(project, "handoff.lead_time")
    per = item.extra["per_deployment"]["churn-api"]
    assert per["latest_s"] == pytest.approx(10 * 86400, rel=0.01)
    assert item.status == PASS  # median of ~0 and 10 days


def test_lineage_pass_warn_fail_and_reproducible_training(project, users):
    """Also the ML Test Score's "training is reproducible" and "pipeline integration tested" (one real
    registry validation serves both: it is the slow part)."""
    from apps.deployments.models import Deployment
    from apps.readiness.assess import assessment_compute
    from apps.registry.models import ModelVersion
    from tests.features.factories import make_feature_store

    assert s.assess(project, "handoff.lineage").status == FAIL  # nothing registered
    v0 = s.ready_version(project, users["owner"])  # no lineage at all
    assert s.assess(project, "handoff.lineage").status == FAIL
    s.deploy(project, users["owner"], v0, slug="plain")
    assert assessment_compute(project=project).item("mlts.infra.1").status == FAIL
    store = make_feature_store(project=project, actor=users["owner"])
    ts = s.training_set(project, users["owner"], store)
    v = s.version_with_training_set(project, users["owner"], store, ts)
    item = s.assess(project, "handoff.lineage")
    assert item.status == WARN and item.figure.startswith("1 of 2")
    Deployment.objects.filter(slug="plain").delete()
    ModelVersion.objects.filter(pk=v0.pk).update(status="archived")
    assert s.assess(project, "handoff.lineage").status == PASS
    s.deploy(project, users["owner"], v, slug="lineage-api")
    a = assessment_compute(project=project)
    assert a.item("mlts.infra.1").status == PASS
    assert a.item("mlts.infra.3").status == PASS  # validated by the registry pipeline


def test_ownership_pass_warn_fail(project, users):
    v = s.ready_version(project, users["owner"])
    s.deploy(project, users["owner"], v, slug="orphan", owner=None, go_live=False)
    item = s.assess(project, "handoff.ownership")
    assert item.status == FAIL and "orphan (no owner)" in item.detail
    s.deploy(project, users["owner"], v, slug="owned", owner=users["data_scientist"])
    assert s.assess(project, "handoff.ownership").status == WARN
    from apps.deployments.models import Deployment

    Deployment.objects.filter(slug="orphan").delete()
    assert s.assess(project, "handoff.ownership").status == PASS


def test_ownership_fails_without_a_reviewer_besides_the_owner(make_user):
    from apps.projects.services import project_create

    owner = make_user("solo")
    project = project_create(actor=owner, name="Solo", slug="solo")
    v = s.ready_version(project, owner)
    s.deploy(project, owner, v, slug="solo-api")
    item = s.assess(project, "handoff.ownership")
    assert item.status == FAIL and "no reviewer besides its owner" in item.detail


def test_standard_api_pass_warn_fail(project, users):
    from apps.deployments.services import deployment_pause

    assert s.assess(project, "handoff.standard_api").status == FAIL
    v = s.ready_version(project, users["owner"])
    quiet = s.deploy(project, users["owner"], v, slug="quiet")
    assert s.assess(project, "handoff.standard_api").status == WARN  # live, but nobody calls it
    s.live_with_traffic(project, users["owner"], slug="busy")
    item = s.assess(project, "handoff.standard_api")
    assert item.status == WARN and item.figure.startswith("1 of 2 live")
    deployment_pause(deployment=quiet, actor=users["owner"], reason="retired")
    item = s.assess(project, "handoff.standard_api")
    assert item.status == PASS and "200 predictions" in item.figure


@pytest.mark.parametrize("answer,status", [("yes", PASS), ("partly", WARN), ("no", FAIL), ("", FAIL)])
def test_oncall_is_answered_by_people(project, users, answer, status):
    from apps.readiness.services import readiness_answer_set

    assert s.assess(project, "handoff.oncall").source == "none"
    readiness_answer_set(project=project, actor=users["manager"], item_key="handoff.oncall", answer=answer,
                         note="rota in the wiki")
    item = s.assess(project, "handoff.oncall")
    assert item.status == status and item.note == "rota in the wiki"


# --- feature gap -------------------------------------------------------------------------------------

CONTRACT = [{"name": "amount", "type": "float"}, {"name": "n_tx", "type": "int"}]


def test_online_inputs_pass_when_every_input_comes_from_an_online_view(project, users):
    from tests.features.factories import make_feature_store

    store = make_feature_store(project=project, actor=users["owner"], online=True)
    v = s.ready_version(project, users["owner"], name="fs-model", contract=CONTRACT, feature_set=store.feature_set,
                        n_features=2)
    s.deploy(project, users["owner"], v, slug="fs-api")
    item = s.assess(project, "features.online_inputs")
    assert item.status == PASS and item.figure == "2 of 2 inputs (100 %)"


def test_online_inputs_warn_when_half_come_from_a_batch_view(project, users):
    from apps.features import services
    from tests.features.factories import make_feature_store

    store = make_feature_store(project=project, actor=users["owner"], online=True)
    services.feature_view_create(project=project, actor=users["owner"], name="customer_batch", entity=store.entity,
                                 source=store.source, timestamp_column="event_timestamp",
                                 features=[{"name": "n_tx"}], availability_lag=timedelta(hours=6), online=False)
    fs = services.feature_set_create(project=project, actor=users["owner"], name="mixed",
                                     references=["customer_stats:amount", "customer_batch:n_tx"])
    v = s.ready_version(project, users["owner"], name="mixed-model", contract=CONTRACT, feature_set=fs, n_features=2)
    s.deploy(project, users["owner"], v, slug="mixed-api")
    item = s.assess(project, "features.online_inputs")
    assert item.status == WARN and item.figure.startswith("1 of 2")


def test_online_inputs_fail_without_feature_store(project, users):
    assert s.assess(project, "features.online_inputs").status == FAIL
    v = s.ready_version(project, users["owner"])
    s.deploy(project, users["owner"], v, slug="inline-api")
    item = s.assess(project, "features.online_inputs")
    assert item.status == FAIL and "no feature set" in item.detail


def test_availability_pass_warn_fail(project, users):
    from apps.features import services
    from tests.features.factories import make_feature_store

    assert s.assess(project, "features.availability").status == FAIL
    store = make_feature_store(project=project, actor=users["owner"], lag=timedelta(hours=1))
    assert s.assess(project, "features.availability").status == PASS
    services.feature_view_create(project=project, actor=users["owner"], name="instant", entity=store.entity,
                                 source=store.source, timestamp_column="event_timestamp",
                                 features=[{"name": "n_tx"}], availability_lag=timedelta(0), online=False)
    item = s.assess(project, "features.availability")
    assert item.status == WARN and "instant" in item.detail


@pytest.mark.parametrize("rate,status", [(0.0, PASS), (0.03, WARN), (0.2, FAIL)])
def test_skew_graded_from_the_latest_skew_check(project, users, rate, status):
    from apps.monitoring.models import MonitoringWindow

    dep, _ids, start = s.live_with_traffic(project, users["owner"])
    assert s.assess(project, "features.skew").figure == "never measured"
    window = s.scheduled_window(dep, start)
    # The skew check's result on the window (monitoring stores feature -> mismatch rate in window.skew).
    MonitoringWindow.objects.filter(pk=window.pk).update(skew={"amount": rate, "age": 0.0})
    item = s.assess(project, "features.skew")
    assert item.status == status and "mismatch" in item.figure
    if rate:
        assert "(amount)" in item.figure


# --- monitoring vacuum -------------------------------------------------------------------------------


def test_drift_schedule_pass_warn_fail(project, users):
    from apps.monitoring.models import MonitoringWindow

    dep, _ids, start = s.live_with_traffic(project, users["owner"])
    assert s.assess(project, "monitoring.drift_schedule").status == FAIL  # never ran
    window = s.scheduled_window(dep, start)
    item = s.assess(project, "monitoring.drift_schedule")
    assert item.status == PASS and item.figure.startswith("1 of 1 on time")
    MonitoringWindow.objects.filter(pk=window.pk).update(created_at=timezone.now() - timedelta(days=3))
    item = s.assess(project, "monitoring.drift_schedule")
    assert item.status == WARN and "days ago" in item.detail


def test_drift_schedule_fail_when_switched_off(project, users):
    from apps.monitoring.services import monitor_settings_update

    dep, _ids, start = s.live_with_traffic(project, users["owner"])
    monitor_settings_update(deployment=dep, actor=users["owner"], schedule_enabled=False)
    item = s.assess(project, "monitoring.drift_schedule")
    assert item.status == FAIL and "scorer: off" in item.detail


def test_outcomes_pass_warn_fail(project, users):
    dep, ids, _ = s.live_with_traffic(project, users["owner"], n=200)
    item = s.assess(project, "monitoring.outcomes")
    assert item.status == FAIL and "no outcomes for 200 predictions" == item.figure
    s.outcomes(dep, users["analyst"], ids[:10])
    item = s.assess(project, "monitoring.outcomes")
    assert item.status == WARN and item.value == pytest.approx(0.05)
    s.outcomes(dep, users["analyst"], ids[10:100])
    item = s.assess(project, "monitoring.outcomes")
    assert item.status == PASS and item.figure.startswith("50 % with outcomes")
    assert item.extra["label_latency_s"] > 0


def test_alert_channels_pass_warn_fail(project, users):
    from apps.monitoring.services import alert_rule_create

    dep, _ids, _ = s.live_with_traffic(project, users["owner"])
    assert s.assess(project, "monitoring.alert_channels").status == FAIL
    alert_rule_create(deployment=dep, actor=users["owner"], name="quiet rule", metric="share_drifted",
                      comparator="gt", threshold=0.3)
    item = s.assess(project, "monitoring.alert_channels")
    assert item.status == WARN and "quiet rule" in item.detail
    alert_rule_create(deployment=dep, actor=users["owner"], name="drift mail", metric="share_drifted",
                      comparator="gt", threshold=0.3, channels=["email"], emails=["ml-oncall@example.com"])
    assert s.assess(project, "monitoring.alert_channels").status == PASS


def test_open_alerts_pass_warn_fail(project, users):
    from apps.monitoring.models import Alert
    from apps.monitoring.services import alert_acknowledge, alert_rule_create

    dep, _ids, start = s.live_with_traffic(project, users["owner"])
    assert s.assess(project, "monitoring.open_alerts").status == PASS
    alert_rule_create(deployment=dep, actor=users["owner"], name="traffic seen", metric="volume", comparator="gt",
                      threshold=0, channels=["email"], emails=["a@example.com"])
    s.scheduled_window(dep, start)  # the window's rules run: an alert opens
    item = s.assess(project, "monitoring.open_alerts")
    assert item.status == FAIL and item.figure == "1 open (1 not acknowledged)"
    alert_acknowledge(alert=Alert.objects.get(deployment=dep), actor=users["analyst"])
    assert s.assess(project, "monitoring.open_alerts").status == WARN


def test_retraining_fail_without_policy(project, users):
    s.live_with_traffic(project, users["owner"])
    item = s.assess(project, "monitoring.retraining")
    assert item.status == FAIL


def test_retraining_pass_and_warn_with_policies(project, users):
    from apps.readiness.assess import retraining_policy_model

    if retraining_policy_model() is None:
        pytest.skip("retraining policies are not in this portal yet")
    from apps.monitoring.services import alert_rule_create
    from apps.training.services.retraining import retraining_policy_save

    dep, _ids, _ = s.live_with_traffic(project, users["owner"], slug="one")
    s.live_with_traffic(project, users["owner"], slug="two")
    rule = alert_rule_create(deployment=dep, actor=users["owner"], name="acc", metric="realized_accuracy",
                             comparator="lt", threshold=0.8, channels=["email"], emails=["a@example.com"])
    retraining_policy_save(deployment=dep, actor=users["owner"], triggers=[{"kind": "alert_rule", "rule_id": rule.pk}])
    assert s.assess(project, "monitoring.retraining").status == WARN
    from apps.deployments.models import Deployment

    Deployment.objects.filter(slug="two").delete()
    assert s.assess(project, "monitoring.retraining").status == PASS


# --- stage, score, ML Test Score ---------------------------------------------------------------------


def test_stage_follows_the_records(project, users):
    from apps.monitoring.services import alert_rule_create
    from apps.readiness.assess import assessment_compute

    assert assessment_compute(project=project).stage == "prototype"
    v = s.ready_version(project, users["owner"])
    assert assessment_compute(project=project).stage == "registered"
    s.deploy(project, users["owner"], v, slug="not-yet", owner=None, go_live=False)
    assert assessment_compute(project=project).stage == "shadow"
    dep, _ids, start = s.live_with_traffic(project, users["owner"])
    assert assessment_compute(project=project).stage == "production"
    s.scheduled_window(dep, start)
    alert_rule_create(deployment=dep, actor=users["owner"], name="drift", metric="share_drifted", comparator="gt",
                      threshold=0.5, channels=["email"], emails=["a@example.com"])
    a = assessment_compute(project=project)
    assert a.stage == "monitored"
    assert 0 < a.score < 100


def test_mlts_people_answers_and_breck_points(project, users):
    from apps.readiness.assess import assessment_compute
    from apps.readiness.services import readiness_answer_set

    readiness_answer_set(project=project, actor=users["manager"], item_key="mlts.model.3", answer="automated")
    readiness_answer_set(project=project, actor=users["manager"], item_key="mlts.model.5", answer="manual")
    a = assessment_compute(project=project)
    assert a.item("mlts.model.3").status == PASS and a.item("mlts.model.5").status == WARN
    assert a.mlts["groups"]["model"] == 1.5
    assert a.mlts["final"] == 0.0  # the data group has nothing yet: the final score is the minimum


def test_mlts_automatic_decisions_with_evidence(project, users):
    from apps.readiness.assess import assessment_compute
    from apps.readiness.services import readiness_answer_set

    # undecidable from records: people may answer ...
    readiness_answer_set(project=project, actor=users["manager"], item_key="mlts.infra.7", answer="manual")
    assert assessment_compute(project=project).item("mlts.infra.7").source == "answer"
    dep, ids, start = s.live_with_traffic(project, users["owner"])
    s.scheduled_window(dep, start)
    a = assessment_compute(project=project)
    # ... until the records decide: one version ever served, nothing to roll back to
    assert a.item("mlts.infra.7").source == "auto" and a.item("mlts.infra.7").status == WARN
    assert a.item("mlts.data.1").status == PASS  # contract + reference profile
    assert a.item("mlts.monitor.2").source == "auto"  # data quality from the window
    assert a.item("mlts.monitor.6").source == "auto" and a.item("mlts.monitor.6").status == PASS
    assert a.item("mlts.monitor.4").status == PASS  # a fresh version
    assert a.item("mlts.monitor.4").evidence_url.endswith("/deployments/scorer/")


def test_lead_time_counts_the_first_go_live_of_a_deployment_created_paused(project, users):
    from apps.deployments.services import deployment_resume

    v = s.ready_version(project, users["owner"])
    s.uploaded_days_ago(v, 5)
    dep = s.deploy(project, users["owner"], v, slug="later", go_live=False)
    assert s.assess(project, "handoff.lead_time").status == FAIL
    deployment_resume(deployment=dep, actor=users["owner"], override_reason="first version live without review (test fixture)")
    item = s.assess(project, "handoff.lead_time")
    assert item.status == PASS and item.figure.startswith("median 5.0 days")


def test_mlts_review_canary_and_rollback_from_promotion_records(project, users):
    """With shadow runs and promotion requests: a candidate shadows, a reviewer approves, production switches."""
    from apps.readiness.assess import assessment_compute, promotion_request_model, shadow_run_model

    if promotion_request_model() is None or shadow_run_model() is None:
        pytest.skip("shadow runs / promotion requests are not in this portal yet")
    from apps.releases.services.promotion import promotion_request_open, promotion_request_review
    from apps.releases.services.shadow import shadow_run_score_pending, shadow_run_start

    dep, _ids, _ = s.live_with_traffic(project, users["owner"], n=300)
    candidate = s.ready_version(project, users["owner"], name=dep.registered_model.name, n_features=3)
    run = shadow_run_start(deployment=dep, actor=users["data_scientist"], candidate=candidate, backfill_hours=2)
    shadow_run_score_pending(run_id=run.pk)
    assert assessment_compute(project=project).item("mlts.infra.6").source == "none"  # nothing promoted yet
    req = promotion_request_open(deployment=dep, actor=users["data_scientist"], candidate=candidate,
                                 justification="better")
    promotion_request_review(request=req, reviewer=users["reviewer"], decision="approve", comment="ok",
                             evidence_hash=req.evidence_hash, artifact_sha256=req.artifact_sha256,
                             override_reason="" if req.gates_passed else "test: gates read")
    a = assessment_compute(project=project)
    assert a.item("mlts.infra.6").status == PASS  # the promoted version shadowed first
    assert a.item("mlts.infra.7").status == PASS  # the previous version is still there to roll back to
    assert a.item("mlts.model.1").figure.startswith("1 of 1 reviewed")
    from apps.readiness.assess import last_promotion_at

    assert last_promotion_at(project) is not None


@pytest.mark.django_db
def test_readiness_finds_the_release_and_training_models_where_they_live_now():
    """The assessment reads shadow runs, promotion requests and retraining policies; after the house moved
    them to apps/releases and apps/training it must still find them (None would read as 'not built')."""
    from apps.readiness import facts
    from apps.releases.models import PromotionRequest, ShadowRun
    from apps.training.models import RetrainingPolicy

    assert facts.shadow_run_model() is ShadowRun
    assert facts.promotion_request_model() is PromotionRequest
    assert facts.retraining_policy_model() is RetrainingPolicy

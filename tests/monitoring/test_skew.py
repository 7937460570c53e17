"""Training-serving skew: logged vectors of an entity-key deployment vs the point-in-time join."""

import uuid
from datetime import timedelta

import pytest

from apps.monitoring import services
from tests.features.factories import make_feature_store

pytestmark = pytest.mark.django_db


def test_skew_check_reports_mismatch_rate_per_feature(project, users):
    from apps.deployments.models import Deployment, PredictionLog
    from apps.features.services import training_set_build_frame
    from apps.registry.models import ModelVersion, RegisteredModel

    owner = users["owner"]
    store = make_feature_store(project=project, actor=owner)
    contract = [{"name": "amount", "type": "float"}, {"name": "n_tx", "type": "int"}]
    model = RegisteredModel.objects.create(project=project, name="skewy", task="binary_classification",
                                           input_contract=contract, feature_set=store.feature_set)
    version = ModelVersion.objects.create(model=model, version=1, status="ready", artifact_key="t",
                                          artifact_sha256="0" * 64, artifact_format="skops", classes=[0, 1])
    dep = Deployment.objects.create(project=project, slug="skewy", name="skewy", registered_model=model,
                                    production_version=version, owner=owner, status="live", input_mode="entity")
    times = [store.start + timedelta(hours=h, minutes=30) for h in range(3, 23)]
    keys = [f"c{i % 5}" for i in range(len(times))]
    import polars as pl

    truth = training_set_build_frame(feature_set=store.feature_set,
                                     labels=pl.DataFrame({"customer_id": keys, "ts": times}), timestamp_column="ts")
    rows = []
    for i, rec in enumerate(truth.iter_rows(named=True)):
        amount = rec["amount"] + (1.0 if i % 4 == 0 else 0.0)  # every 4th served amount differs
        rows.append(PredictionLog(request_id=uuid.uuid4(), batch_id=uuid.uuid4(), deployment=dep, version=version,
                                  created_at=times[i], entity_key=keys[i], inputs={"amount": amount, "n_tx": rec["n_tx"]},
                                  output=0, probabilities={"0": 0.5, "1": 0.5}, latency_ms=1.0))
    PredictionLog.objects.bulk_create(rows)
    skew = services.skew_check(deployment=dep, start=store.start, end=store.end)
    assert skew == {"amount": 0.25, "n_tx": 0.0}
    # and it lands on the window, where it is an alertable metric
    window = services.window_compute(deployment=dep, start=store.start, end=store.end, evaluate=False)
    assert window.skew == skew and services.window_metric(window, "skew_rate") == 0.25
    # the freshness of the model's feature views lands there too: a stale view is an alertable metric
    assert window.feature_freshness["customer_stats"]["breached"] is True  # data of 2024, SLA one day
    assert services.window_metric(window, "feature_sla_breaches") == 1.0
    assert services.window_metric(window, "feature_staleness_ratio") > 100
    rule = services.alert_rule_create(deployment=dep, actor=owner, name="stale features",
                                      metric="feature_sla_breaches", comparator="gt", threshold=0)
    services.alert_rules_evaluate(deployment=dep, now=store.end)
    from apps.monitoring.models import Alert

    alert = Alert.objects.get(rule=rule)
    assert alert.status == "open" and alert.value == 1.0


def test_skew_comes_from_the_windows_own_rows_and_is_shown(project, users, api_client, logged_in_client):
    """A count window covers rows by (request time, request id), not a time range: its skew is measured on
    exactly those rows, and the windows API and the dashboard show it."""
    from apps.deployments.models import Deployment, PredictionLog
    from apps.features.services import training_set_build_frame
    from apps.registry.models import ModelVersion, RegisteredModel

    owner = users["owner"]
    store = make_feature_store(project=project, actor=owner)
    contract = [{"name": "amount", "type": "float"}, {"name": "n_tx", "type": "int"}]
    model = RegisteredModel.objects.create(project=project, name="skewy", task="binary_classification",
                                           input_contract=contract, feature_set=store.feature_set)
    version = ModelVersion.objects.create(model=model, version=1, status="ready", artifact_key="t",
                                          artifact_sha256="0" * 64, artifact_format="skops", classes=[0, 1])
    dep = Deployment.objects.create(project=project, slug="skewy", name="skewy", registered_model=model,
                                    production_version=version, owner=owner, status="live", input_mode="entity")
    services.monitor_settings_update(deployment=dep, actor=owner, window_kind="count", window_count=100)
    t = store.start + timedelta(hours=12)  # every request at the same time: only the request id orders them
    ids = sorted(uuid.uuid4() for _ in range(200))
    import polars as pl

    truth = training_set_build_frame(feature_set=store.feature_set, labels=pl.DataFrame(
        {"customer_id": [f"c{i % 5}" for i in range(200)], "ts": [t] * 200}), timestamp_column="ts")
    rows = []
    for i, rec in enumerate(truth.iter_rows(named=True)):
        amount = rec["amount"] + (1.0 if i < 100 and i % 4 == 0 else 0.0)  # skew in the first window only
        rows.append(PredictionLog(request_id=ids[i], batch_id=uuid.uuid4(), deployment=dep, version=version,
                                  created_at=t, entity_key=f"c{i % 5}", inputs={"amount": amount, "n_tx": rec["n_tx"]},
                                  output=0, probabilities={"0": 0.5, "1": 0.5}, latency_ms=1.0))
    PredictionLog.objects.bulk_create(rows[::-1])  # log ids in reverse request order
    assert services.monitoring_tick(now=t + timedelta(hours=1))["windows"] == 2
    from apps.monitoring.models import MonitoringWindow

    first, second = MonitoringWindow.objects.filter(deployment=dep).order_by("first_request_id")
    assert (first.first_request_id, first.last_request_id, second.last_request_id) == (ids[0], ids[99], ids[199])
    assert first.skew == {"amount": 0.25, "n_tx": 0.0} and second.skew == {"amount": 0.0, "n_tx": 0.0}
    r = api_client(users["analyst"]).get(f"/api/v1/deployments/{dep.slug}/monitoring/windows")
    assert r.status_code == 200
    assert [(w["skew"], w["partial"], w["first_request_id"]) for w in r.json()] == [
        (second.skew, False, str(ids[100])), (first.skew, False, str(ids[0]))]
    page = logged_in_client(users["analyst"]).get(f"/projects/{project.slug}/monitoring/{dep.slug}/")
    assert page.status_code == 200 and b"Training-serving skew" in page.content and b"fig-skew" in page.content


def test_feature_freshness_is_exported_to_prometheus(project, users):
    from prometheus_client import CollectorRegistry, generate_latest

    from apps.features.metrics import FeatureFreshnessCollector

    make_feature_store(project=project, actor=users["owner"])
    registry = CollectorRegistry()
    registry.register(FeatureFreshnessCollector())
    text = generate_latest(registry).decode()
    assert 'slipway_feature_view_sla_breached{project="fraud",view="customer_stats"} 1.0' in text
    assert 'slipway_feature_view_freshness_sla_seconds{project="fraud",view="customer_stats"} 86400.0' in text
    assert 'slipway_feature_view_age_seconds{project="fraud",view="customer_stats"}' in text

"""Monitoring services against the database: windows, alerts, outcomes."""

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from apps.deployments.models import PredictionLog
from apps.monitoring import services
from apps.monitoring.models import Alert, AlertStatus, MonitoringWindow, Notification, Outcome

from .factories import log_predictions, make_deployment

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
def deployment(project, users):
    dep = make_deployment(project, users["owner"])
    ms = services.monitor_settings_for(dep)
    ms.window_minutes, ms.last_window_end = 15, T0
    ms.save()
    return dep


def test_tick_computes_due_windows_and_flags_the_drifted_feature(deployment):
    log_predictions(deployment, n=3000, start=T0, seconds=890, shift=0.0, seed=1)
    log_predictions(deployment, n=3000, start=T0 + timedelta(minutes=15), seconds=890, shift=0.5, seed=2)
    result = services.monitoring_tick(now=T0 + timedelta(minutes=31))
    assert result == {"windows": 2}
    first, second = MonitoringWindow.objects.order_by("start")
    assert first.n_rows == 3000 and first.n_drifted == 0
    drifted = {f.feature for f in second.features.filter(drifted=True)}
    # at this seed is_mobile's share differs by chance (chi-square p = 0.009, Holm-adjusted 0.017): a real
    # false alarm at the nominal rate (test_drift_false_alarms checks the rate), no longer hidden by a floor
    assert "amount" in drifted and "age" not in drifted
    assert second.prediction_drifted and second.latency_p95_ms > 0
    assert first.domain_auc < 0.6 < second.domain_auc  # the domain classifier ran on the profile's sample
    assert first.estimated["accuracy"]["value"] > 0.5  # CBPE calibrated on the profile's sample
    amount = second.features.get(feature="amount")
    assert amount.stats["ks_pvalue"] < 0.05 and len(amount.histogram["current"]) == len(amount.histogram["edges"]) - 1
    # a repeated tick is a no-op
    assert services.monitoring_tick(now=T0 + timedelta(minutes=31)) == {"windows": 0}


def test_threshold_override_requires_a_reason_and_applies(deployment, users):
    from apps.common.errors import InvalidInput

    with pytest.raises(InvalidInput):
        services.threshold_override_set(deployment=deployment, actor=users["analyst"], feature="amount",
                                        values={"wasserstein": 2.0}, reason=" ")
    services.threshold_override_set(deployment=deployment, actor=users["analyst"], feature="amount",
                                    values={"wasserstein": 2.0}, reason="seasonal promotion")
    log_predictions(deployment, n=2000, start=T0, seconds=890, shift=0.5)
    services.monitoring_tick(now=T0 + timedelta(minutes=16))
    assert not MonitoringWindow.objects.get().features.get(feature="amount").drifted


def test_alert_lifecycle_no_duplicates_cooldown_and_ack(deployment, users, mailoutbox):
    rule = services.alert_rule_create(deployment=deployment, actor=users["owner"], name="amount drift",
                                      metric="drift:amount", comparator="gte", threshold=0.2, consecutive=2,
                                      channels=["email"], emails=["oncall@example.com"], cooldown_minutes=30)
    for i, shift in enumerate([0.5, 0.5, 0.5, 0.0]):
        log_predictions(deployment, n=1500, start=T0 + timedelta(minutes=15 * i), seconds=890, shift=shift, seed=i)
    services.monitoring_tick(now=T0 + timedelta(minutes=16))
    assert not Alert.objects.exists()  # one window is not two in a row
    services.monitoring_tick(now=T0 + timedelta(minutes=31))
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.OPEN and alert.value >= 0.2
    services.monitoring_tick(now=T0 + timedelta(minutes=46))
    assert Alert.objects.count() == 1  # still breached: no duplicate
    services.alert_acknowledge(alert=alert, actor=users["analyst"])
    alert.refresh_from_db()
    assert alert.acknowledged_by == users["analyst"]
    services.monitoring_tick(now=T0 + timedelta(minutes=61))
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED and alert.resolved_value < 0.2
    assert Notification.objects.filter(alert=alert).count() == 2
    assert rule.alerts.count() == 1


def test_outcomes_ingest_is_idempotent_and_reports_conflicts_and_unknown(deployment, users):
    ids, score = log_predictions(deployment, n=200, start=T0, seconds=600)
    items = [{"request_id": str(r), "label": int(s > 0.5)} for r, s in zip(ids, score, strict=True)]
    out = services.outcomes_ingest(deployment=deployment, actor=users["owner"], items=items[:150],
                                   now=T0 + timedelta(hours=2))
    assert out["created"] == 150 and out["conflicts"] == [] and out["unknown_request_ids"] == []
    assert out["label_latency_s"]["max"] <= 7200
    again = items[100:] + [{"request_id": str(ids[0]), "label": 1 - items[0]["label"]},
                           {"request_id": "00000000-0000-0000-0000-000000000001", "label": 1}]
    out = services.outcomes_ingest(deployment=deployment, actor=users["owner"], items=again,
                                   now=T0 + timedelta(days=3))
    assert out["created"] == 50 and out["unchanged"] == 50
    assert out["conflicts"] == [{"request_id": str(ids[0]), "stored": items[0]["label"],
                                 "received": 1 - items[0]["label"]}]
    # not in the log: held pending (it may still be in a serving spool) ...
    assert out["pending_request_ids"] == ["00000000-0000-0000-0000-000000000001"] and out["unknown_request_ids"] == []
    # ... and unknown once posted again after the hold time without reaching the log
    out = services.outcomes_ingest(deployment=deployment, actor=users["owner"], items=again[-1:],
                                   now=T0 + timedelta(days=3, hours=2))
    assert out["unknown_request_ids"] == ["00000000-0000-0000-0000-000000000001"] and out["pending"] == 0
    assert Outcome.objects.get(request_id=ids[0]).label == items[0]["label"]  # not overwritten
    assert Outcome.objects.count() == 200


def test_realized_and_estimated_performance_per_window(deployment, users):
    rng = np.random.default_rng(3)
    ref_scores = rng.uniform(0, 1, 3000)
    services.calibration_fit(deployment=deployment, actor=users["owner"], scores=ref_scores,
                             labels=(rng.random(3000) < ref_scores).astype(int), source="test reference")
    ids, score = log_predictions(deployment, n=2000, start=T0, seconds=890)
    services.monitoring_tick(now=T0 + timedelta(minutes=16))
    window = MonitoringWindow.objects.get()
    assert 0.5 < window.estimated["accuracy"]["value"] < 1
    labels = (rng.random(2000) < score).astype(int)
    services.outcomes_ingest(deployment=deployment, actor=users["owner"],
                             items=[{"request_id": str(r), "label": int(y)} for r, y in zip(ids, labels, strict=True)])
    services.performance_refresh(deployment_id=deployment.pk, since=T0, until=T0 + timedelta(minutes=15))
    window.refresh_from_db()
    assert window.n_labelled == 2000
    assert abs(window.realized["accuracy"]["value"] - window.estimated["accuracy"]["value"]) < 0.04


def test_count_windows(deployment, users):
    ms = services.monitor_settings_for(deployment)
    services.monitor_settings_update(deployment=deployment, actor=users["owner"], window_kind="count", window_count=500)
    ms.refresh_from_db()
    services.alert_rule_create(deployment=deployment, actor=users["owner"], name="thin traffic", metric="volume",
                               comparator="lt", threshold=300)
    log_predictions(deployment, n=1200, start=T0, seconds=3000)
    assert services.monitoring_tick(now=T0 + timedelta(hours=2)) == {"windows": 2}
    assert not Alert.objects.exists()  # the partial window (200 rows) is shown, but it does not alert
    assert sorted(MonitoringWindow.objects.values_list("n_rows", "partial")) == [(200, True), (500, False),
                                                                                (500, False)]
    log_predictions(deployment, n=300, start=T0 + timedelta(hours=1), seconds=60, seed=5)
    assert services.monitoring_tick(now=T0 + timedelta(hours=2)) == {"windows": 1}
    # the trailing partial window was replaced: 1,500 rows = 3 closed windows, nothing partial
    assert sorted(MonitoringWindow.objects.values_list("n_rows", "partial")) == [(500, False)] * 3


def test_webhook_failure_is_recorded_retried_then_failed(deployment, users):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    services.alert_rule_create(deployment=deployment, actor=users["owner"], name="r", metric="share_drifted",
                               comparator="gte", threshold=0.0, channels=["webhook"],
                               webhook_url=f"http://127.0.0.1:{port}/hook", webhook_secret="x")
    log_predictions(deployment, n=300, start=T0, seconds=600)
    services.monitoring_tick(now=T0 + timedelta(minutes=16))
    n = Notification.objects.get()
    assert services.notification_deliver(notification_id=n.pk) is False
    n.refresh_from_db()
    assert n.status == "retrying" and n.attempts == 1 and "Error" in n.error
    assert services.notification_deliver(notification_id=n.pk, final_attempt=True) is False
    n.refresh_from_db()
    assert n.status == "failed" and n.attempts == 2


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    import hashlib
    import hmac

    sig = services.webhook_signature("k", "1700000000", b'{"a":1}')
    assert sig == "sha256=" + hmac.new(b"k", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()


def test_regression_window_gets_dle_estimates_with_bands_and_thresholds(project, users):
    """A regressor's version brings its reference rows; its windows get MAE/RMSE estimated without labels
    (DLE), and the realized figures once outcomes arrive."""
    import uuid

    import pandas as pd

    from apps.common.storage import artifact_store
    from apps.deployments.models import Deployment, PredictionLog
    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.registry.profile import build_reference_profile, reference_rows

    rng = np.random.default_rng(0)

    def world(n, shift=0.0):
        x = rng.normal(shift, 1, n)
        y = 2 * x + rng.normal(0, 1, n) * np.where(np.abs(x) > 1, 2.0, 0.5)
        return pd.DataFrame({"x": x}), 2 * x, y

    contract = [{"name": "x", "type": "float"}]
    ref, pred, y = world(20_000)
    profile = build_reference_profile(ref, contract, predictions=pred)
    data, info = reference_rows(ref, contract, predictions=pred, labels=y)
    profile["rows"] = {**info, "key": artifact_store().put_bytes(data, suffix=".parquet").key}
    owner = users["owner"]
    model = RegisteredModel.objects.create(project=project, name="reg", task="regression", input_contract=contract)
    version = ModelVersion.objects.create(model=model, version=1, status="ready", artifact_key="t",
                                          artifact_sha256="0" * 64, artifact_format="skops",
                                          reference_profile=profile)
    dep = Deployment.objects.create(project=project, slug="reg", name="reg", registered_model=model,
                                    production_version=version, owner=owner, status="live")
    services.monitor_settings_update(deployment=dep, actor=owner, window_kind="count", window_count=2000)
    cur, cpred, cy = world(2000, shift=1.0)  # more rows in the noisy region: the loss goes up
    ids = [uuid.uuid4() for _ in range(2000)]
    PredictionLog.objects.bulk_create([
        PredictionLog(request_id=ids[i], batch_id=uuid.uuid4(), deployment=dep, version=version,
                      created_at=T0 + timedelta(seconds=i), inputs={"x": float(cur.x[i])}, output=float(cpred[i]),
                      latency_ms=1.0) for i in range(2000)])
    assert services.monitoring_tick(now=T0 + timedelta(hours=2))["windows"] == 1
    window = MonitoringWindow.objects.get(deployment=dep)
    mae = float(np.mean(np.abs(cpred - cy)))
    est = window.estimated["mae"]
    assert est["low"] <= mae <= est["high"] and est["alert"] and est["upper_threshold"] < est["value"]
    assert window.estimated["rmse"]["value"] > 0
    services.outcomes_ingest(deployment=dep, actor=owner, items=[{"request_id": str(r), "label": float(v)}
                                                                 for r, v in zip(ids, cy, strict=True)])
    services.performance_refresh(deployment_id=dep.pk, since=T0, until=T0 + timedelta(hours=1))
    window.refresh_from_db()
    assert window.realized["mae"]["value"] == pytest.approx(mae) and window.realized["mae"]["alert"]


def test_windows_wait_for_predictions_still_in_a_spool(deployment, users, settings, tmp_path):
    """A prediction answered but not yet drained holds its window open: the window closes only when the
    log has every row of its request times — then the late row lands in the window of its request time."""
    import orjson

    from apps.deployments import logpipe, spool

    settings.SERVING_SPOOL_DIR, settings.MONITORING_LOG_MAX_WAIT_SECONDS = tmp_path, 3600
    services.monitor_settings_update(deployment=deployment, actor=users["owner"], window_kind="count",
                                     window_count=500)
    ids, _ = log_predictions(deployment, n=1000, start=T0, seconds=1000)
    late = str(uuid.uuid4())
    w = spool.SpoolWriter(tmp_path)  # answered at T0 + 100 s, still in the spool
    w.append(orjson.dumps({"k": "p", "t": (T0 + timedelta(seconds=100)).timestamp(), "d": deployment.pk,
                           "v": deployment.production_version_id, "b": str(uuid.uuid4()), "l": 1.0,
                           "r": [[late, {"amount": 50.0, "age": 40.0, "is_mobile": False}, 1, {"0": 0.4, "1": 0.6},
                                  None]]}) + b"\n")
    now = T0 + timedelta(minutes=30)
    assert services.log_watermark(now) == T0 + timedelta(seconds=100)
    assert services.monitoring_tick(now=now) == {"windows": 0}  # nothing closes past the pending record
    assert MonitoringWindow.objects.get().partial  # what is known so far is shown, marked partial
    spool.drain_once(tmp_path, logpipe.sink)
    assert services.monitoring_tick(now=now)["windows"] == 2
    first = MonitoringWindow.objects.filter(partial=False).order_by("start").first()
    assert first.n_rows == 500 and PredictionLog.objects.filter(
        services.common.window_rows_q(first), deployment=deployment, request_id=late).exists()
    # a stuck drainer holds windows for MONITORING_LOG_MAX_WAIT_SECONDS at most
    w.append(orjson.dumps({"k": "p", "t": T0.timestamp(), "d": deployment.pk, "v": deployment.production_version_id,
                           "b": str(uuid.uuid4()), "l": 1.0, "r": []}) + b"\n")
    settings.MONITORING_LOG_MAX_WAIT_SECONDS = 600
    assert services.log_watermark(now) == now - timedelta(seconds=600)
    w.close()


def test_bool_feature_logged_as_numbers_by_entity_mode_is_not_reported_drifted(deployment):
    from apps.deployments.models import PredictionLog

    log_predictions(deployment, n=1500, start=T0, seconds=890, seed=3)
    logs = list(PredictionLog.objects.filter(deployment=deployment))
    for row in logs:  # what older entity-key deployments logged: 1.0/0.0 instead of true/false
        row.inputs = {**row.inputs, "is_mobile": 1.0 if row.inputs["is_mobile"] else 0.0}
    PredictionLog.objects.bulk_update(logs, ["inputs"], batch_size=500)
    window = services.window_compute(deployment=deployment, start=T0, end=T0 + timedelta(minutes=15),
                                     evaluate=False)
    flag = window.features.get(feature="is_mobile")
    assert flag.kind == "categorical" and not flag.drifted
    assert flag.stats["unseen_rate"] == 0.0 and set(flag.histogram["categories"]) == {"True", "False"}


def test_datetime_feature_is_drift_monitored_on_the_time_line(project, users):
    """A declared ``datetime`` feature gets KS/PSI/Wasserstein on seconds since 1970 UTC: the reference
    profile is built from the typed column, the logged ISO 8601 values (any zone, or none = UTC) are read
    the same way; signups a year later than the reference are drifted and out of range, the same period is not."""
    import pandas as pd

    from apps.deployments.services import deployment_create
    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.registry.profile import build_reference_profile

    contract = [{"name": "amount", "type": "float"}, {"name": "age", "type": "float"},
                {"name": "signup", "type": "datetime", "nullable": True}]
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2025-01-01").value // 10**9
    year = 365 * 86400

    def signups(n, offset):
        return pd.to_datetime(rng.uniform(start + offset, start + offset + year, n).astype("int64"), unit="s")

    ref = pd.DataFrame({"amount": rng.normal(50, 10, 4000), "age": rng.normal(40, 12, 4000),
                        "signup": signups(4000, 0).to_numpy(dtype="datetime64[ns]")})
    ref.loc[:99, "signup"] = pd.NaT
    profile = build_reference_profile(ref, contract, sample_rows=0)
    entry = profile["features"]["signup"]
    assert entry["kind"] == "numeric" and entry["type"] == "datetime" and entry["unit"] == "epoch_seconds"
    assert entry["missing_rate"] == pytest.approx(100 / 4000)
    assert start <= entry["min"] < entry["max"] <= start + year
    owner = users["owner"]
    model = RegisteredModel.objects.create(project=project, name="signups", task="binary_classification",
                                           input_contract=contract, created_by=owner)
    version = ModelVersion.objects.create(model=model, version=1, status="ready", artifact_key="test",
                                          artifact_sha256="0" * 64, artifact_format="skops", classes=[0, 1],
                                          reference_profile=profile, created_by=owner)
    dep = deployment_create(project=project, actor=owner, version=version, slug="signups", owner=owner,
                            override_reason="test fixture")

    def log(n, at, offset):
        times = signups(n, offset)
        zones = ["Z", "", "+02:00"]
        rows = []
        for i, t in enumerate(times):
            local = t + pd.Timedelta(hours=2) if zones[i % 3] == "+02:00" else t
            text = local.strftime("%Y-%m-%dT%H:%M:%S") + zones[i % 3]
            rows.append(PredictionLog(request_id=uuid.uuid4(), batch_id=uuid.uuid4(), deployment_id=dep.pk,
                                      version_id=version.pk, created_at=at + timedelta(seconds=i % 800),
                                      inputs={"amount": float(rng.normal(50, 10)), "age": float(rng.normal(40, 12)),
                                              "signup": text if i % 50 else None},
                                      output=1, probabilities={"0": 0.4, "1": 0.6}, latency_ms=1.0))
        PredictionLog.objects.bulk_create(rows)

    log(1500, T0, 0)
    log(1500, T0 + timedelta(minutes=15), year)
    same = services.window_compute(deployment=dep, start=T0, end=T0 + timedelta(minutes=15), evaluate=False)
    later = services.window_compute(deployment=dep, start=T0 + timedelta(minutes=15),
                                    end=T0 + timedelta(minutes=30), evaluate=False)
    a, b = same.features.get(feature="signup"), later.features.get(feature="signup")
    assert a.kind == "numeric" and not a.drifted and a.stats["ks_pvalue"] > 0.01
    assert a.stats["missing_rate"] == pytest.approx(1 / 50) and a.stats["out_of_range_rate"] < 0.01
    assert b.drifted and b.stats["ks_pvalue"] < 1e-6 and b.stats["out_of_range_rate"] > 0.95
    assert not later.features.get(feature="amount").drifted
    # the dashboard draws the datetime feature on a time axis (UTC dates), not as seconds since 1970
    from apps.monitoring.selectors import histogram_figure

    assert b.histogram["unit"] == "epoch_seconds" and "unit" not in later.features.get(feature="amount").histogram
    fig = histogram_figure(b.kind, b.histogram, "signup")
    ticks = fig["layout"]["xaxis"]["ticktext"]
    assert all(t.startswith(("2025-", "2026-")) for t in ticks), ticks
    assert "UTC" in fig["layout"]["xaxis"]["title"]["text"] and "e+09" not in fig["summary"]

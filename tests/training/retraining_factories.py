"""A deployment that degrades, for retraining tests (built synchronously through the real services).

    w = degrading_world(project=project, owner=users["owner"])
    w.deployment / w.parent / w.fs / w.end          # entity-mode deployment serving the parent (v1)
    log_traffic(w)                                  # logged predictions of the last 47 h (entity keys, times)
    post_outcomes(w, actor)                         # their ground truth, through monitoring's ingest service

The feature store (``tests.features.factories.feature_rows``) holds hourly rows for customers c0..c19
over the 48 h before ``w.end`` (the current hour): ``amount = 100*e + t``, ``n_tx = t``, 1 h lag.
The parent learnt the old concept (fraud iff amount >= 1000); the world now follows a new one (fraud
iff n_tx >= 20). So realized accuracy drops to about 0.5, and recent traffic (n_tx in the 40s) drifts
from the parent's reference profile; a refit on outcome labels recovers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from tests.features.factories import csv_bytes, feature_rows
from tests.training.factories import N_ENTITIES, N_TIMES, old_concept_frame

PER_HOUR_MINUTES = (10, 30, 50)  # each customer calls three times an hour


@dataclass
class World:
    deployment: object
    parent: object
    feature_set: object
    view: object
    start: datetime
    end: datetime


def _hour(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def degrading_world(*, project, owner, slug: str = "fraud-live", now: datetime | None = None) -> World:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from apps.deployments.services import deployment_create
    from apps.features import services as fsvc
    from apps.registry import services as rsvc
    from tests.registry.factories import run_validation_now, skops_bytes, table_csv_bytes, upload_file

    end = _hour(now or datetime.now(UTC))
    start = end - timedelta(hours=N_TIMES)
    entity = fsvc.entity_create(project=project, actor=owner, name="customer", join_key="customer_id")
    version = fsvc.data_source_upload(project=project, actor=owner, name="transactions", filename="tx.csv",
                                      upload=csv_bytes(feature_rows(N_ENTITIES, N_TIMES, start=start)))
    view = fsvc.feature_view_create(project=project, actor=owner, name="customer_stats", entity=entity,
                                    source=version.source, timestamp_column="event_timestamp",
                                    features=[{"name": "amount"}, {"name": "n_tx"}],
                                    availability_lag=timedelta(hours=1), ttl=None, online=True)
    fset = fsvc.feature_set_create(project=project, actor=owner, name="fraud-inputs",
                                   references=["customer_stats:amount", "customer_stats:n_tx"])
    model = rsvc.registered_model_create(project=project, actor=owner, name="fraud", task="binary_classification",
                                         input_contract=None, feature_set=fset)
    X, y = old_concept_frame()
    est = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    parent = run_validation_now(rsvc.model_version_upload(
        model=model, actor=owner, artifact=upload_file(skops_bytes(est), "m.skops"),
        holdout=upload_file(table_csv_bytes(X, y), "holdout.csv")))
    assert parent.status == "ready", parent.status_reason
    fsvc.feature_view_materialize(view=view, as_of=end)
    dep = deployment_create(project=project, actor=owner, version=parent, slug=slug, owner=owner,
                            input_mode="entity", override_reason="first version live without review (test fixture)")
    return World(deployment=dep, parent=parent, feature_set=fset, view=view, start=start, end=end)


def new_concept(n_tx: int) -> int:
    return int(n_tx >= 20)


def log_traffic(w: World, *, first_hour: int = 1, last_hour: int = N_TIMES - 1) -> list[uuid.UUID]:
    """Bulk-log the parent's predictions as the serving log would: entity key, features used, output."""
    from apps.deployments.models import PredictionLog
    from apps.registry.loading import load_predictor

    predictor = load_predictor(w.parent)
    rows, ids = [], []
    batch = uuid.uuid4()
    for h in range(first_hour, last_hour + 1):
        t = h - 1  # the newest hour whose values are available (1 h lag)
        X = np.array([[100.0 * e + t, float(t)] for e in range(N_ENTITIES)])
        preds, proba = predictor.predict(X)
        for minute in PER_HOUR_MINUTES:
            for e in range(N_ENTITIES):
                rid = uuid.uuid4()
                ids.append(rid)
                p = float(proba[e, 1])
                rows.append(PredictionLog(
                    request_id=rid, batch_id=batch, deployment_id=w.deployment.pk, version_id=w.parent.pk,
                    created_at=w.start + timedelta(hours=h, minutes=minute), entity_key=f"c{e}",
                    inputs={"amount": X[e, 0], "n_tx": int(t)}, output=int(preds[e]),
                    probabilities={"0": 1 - p, "1": p}, latency_ms=2.0))
    PredictionLog.objects.bulk_create(rows, batch_size=2000)
    return ids


def log_fresh_traffic(w: World, *, n: int = 240) -> list[uuid.UUID]:
    """Predictions logged now (after a retrained candidate was registered: out-of-sample for its shadow run),
    with the newest hour's features."""
    from django.utils import timezone

    from apps.deployments.models import PredictionLog
    from apps.registry.loading import load_predictor

    predictor = load_predictor(w.parent)
    t = N_TIMES - 2
    X = np.array([[100.0 * e + t, float(t)] for e in range(N_ENTITIES)])
    preds, proba = predictor.predict(X)
    now, batch, rows = timezone.now(), uuid.uuid4(), []
    for i in range(n):
        e = i % N_ENTITIES
        p = float(proba[e, 1])
        rows.append(PredictionLog(
            request_id=uuid.uuid4(), batch_id=batch, deployment_id=w.deployment.pk, version_id=w.parent.pk,
            created_at=now + timedelta(milliseconds=i), entity_key=f"c{e}", inputs={"amount": X[e, 0], "n_tx": t},
            output=int(preds[e]), probabilities={"0": 1 - p, "1": p}, latency_ms=2.0))
    PredictionLog.objects.bulk_create(rows)
    return [r.request_id for r in rows]


def post_outcomes(w: World, actor, *, limit: int | None = None) -> dict:
    """Ground truth for logged requests (newest concept), through monitoring's real ingest service."""
    from apps.deployments.models import PredictionLog
    from apps.monitoring.services import outcomes_ingest

    logs = PredictionLog.objects.filter(deployment=w.deployment).order_by("created_at", "id")
    if limit is not None:
        logs = logs[:limit]
    items = [{"request_id": str(rid), "label": new_concept(inputs["n_tx"])}
             for rid, inputs in logs.values_list("request_id", "inputs")]
    return outcomes_ingest(deployment=w.deployment, actor=actor, items=items)


def monitor(w: World, *, windows: int = 3):
    """Hourly windows; the last ``windows`` complete hours are due at the next tick."""
    from apps.monitoring.services import monitor_settings_for

    ms = monitor_settings_for(w.deployment)
    ms.window_minutes, ms.last_window_end = 60, w.end - timedelta(hours=windows)
    ms.save()
    return ms


def accuracy_rule(w: World, actor, *, consecutive: int = 2):
    from apps.monitoring.services import alert_rule_create

    return alert_rule_create(deployment=w.deployment, actor=actor, name="accuracy below 0.8",
                             metric="realized_accuracy", comparator="lt", threshold=0.8, consecutive=consecutive,
                             severity="warning", cooldown_minutes=0)


def require_promotion():
    """Skip (saying why) where the deployments app's shadow runs / promotion requests are not migrated."""
    import pytest
    from django.db import connection

    tables = set(connection.introspection.table_names())
    missing = {"deployments_shadowrun", "deployments_promotionrequest"} - tables
    if missing:
        pytest.skip(f"shadow runs / promotion requests are not installed here (no table {', '.join(sorted(missing))})")

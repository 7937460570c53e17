"""Reusable feature-store test data (used by the features, serving and monitoring tests).

    from tests.features.factories import make_feature_store, labels_frame

    fs = make_feature_store(project=project, actor=users["owner"])          # needs a DB (django_db)
    fs.entity / fs.source / fs.source_version / fs.view / fs.feature_set    # model instances
    fs.frame                                                                # the uploaded polars frame
    feature_view_materialize(view=fs.view, as_of=fs.end)                    # fill the online store
    online_features_get(feature_set=fs.feature_set, entity_keys=["c1"], now=fs.end)

Deterministic data: entity ``customer`` (join key ``customer_id``, keys "c0".."c{n-1}"), source
``transactions`` with one row per customer per hour from ``START`` (2024-01-01 00:00 UTC):
``amount = 100*e + t`` (float), ``n_tx = t`` (int), ``country`` ("NL"/"DE" alternating by customer).
The view ``customer_stats`` (online by default, lag 1h, TTL given or none) serves ``amount`` and ``n_tx``;
the feature set ``fraud-inputs`` holds ``customer_stats:amount`` and ``customer_stats:n_tx``.
``labels_frame(fs)`` gives a label frame (customer_id, event_timestamp, is_fraud) at half-hours.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class FeatureStore:
    entity: object
    source: object
    source_version: object
    view: object
    feature_set: object
    frame: pl.DataFrame
    start: datetime
    end: datetime


def feature_rows(n_entities: int = 5, n_times: int = 24, start: datetime = START) -> pl.DataFrame:
    rows = {"customer_id": [], "event_timestamp": [], "amount": [], "n_tx": [], "country": []}
    for e in range(n_entities):
        for t in range(n_times):
            rows["customer_id"].append(f"c{e}")
            rows["event_timestamp"].append(start + timedelta(hours=t))
            rows["amount"].append(float(100 * e + t))
            rows["n_tx"].append(t)
            rows["country"].append("NL" if e % 2 == 0 else "DE")
    return pl.DataFrame(rows)


def csv_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_csv(buf)
    return buf.getvalue()


def make_feature_store(*, project, actor, n_entities: int = 5, n_times: int = 24, online: bool = True,
                       lag: timedelta = timedelta(hours=1), ttl: timedelta | None = None,
                       view_name: str = "customer_stats", set_name: str = "fraud-inputs") -> FeatureStore:
    from apps.features import services

    entity = services.entity_create(project=project, actor=actor, name="customer", join_key="customer_id",
                                    description="A card holder")
    frame = feature_rows(n_entities, n_times)
    version = services.data_source_upload(project=project, actor=actor, name="transactions",
                                          upload=csv_bytes(frame), filename="transactions.csv",
                                          description="Hourly transaction aggregates")
    view = services.feature_view_create(
        project=project, actor=actor, name=view_name, entity=entity, source=version.source,
        timestamp_column="event_timestamp",
        features=[{"name": "amount", "description": "Amount spent in the hour"},
                  {"name": "n_tx", "description": "Transactions so far"}],
        availability_lag=lag, ttl=ttl, online=online, freshness_sla=timedelta(days=1), tags=["payments"],
        description="Per-customer transaction statistics")
    feature_set = services.feature_set_create(project=project, actor=actor, name=set_name,
                                              references=[f"{view_name}:amount", f"{view_name}:n_tx"])
    return FeatureStore(entity=entity, source=version.source, source_version=version, view=view,
                        feature_set=feature_set, frame=frame, start=START,
                        end=START + timedelta(hours=n_times))


def labels_frame(store: FeatureStore, *, n_entities: int = 5, n_times: int = 24) -> pl.DataFrame:
    rows = {"customer_id": [], "event_timestamp": [], "is_fraud": []}
    for e in range(n_entities + 1):  # one unknown customer
        for t in range(0, n_times, 3):
            rows["customer_id"].append(f"c{e}")
            rows["event_timestamp"].append(store.start + timedelta(hours=t, minutes=30))
            rows["is_fraud"].append(int((e + t) % 4 == 0))
    return pl.DataFrame(rows)

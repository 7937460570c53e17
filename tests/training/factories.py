"""Training-job test data on top of ``tests.features.factories``: a feature store, a model backed by
its feature set, a READY parent version trained on an *old* concept, and label files following a *new*
concept, so a refit on fresh labels measurably beats the parent on the same holdout.

    fs, model, parent = make_trainable(project=project, actor=users["owner"])
    labels = concept_labels(fs, n_entities=20, n_times=48)      # customer_id, event_timestamp, is_fraud

Data (from ``feature_rows``): ``amount = 100*e + t``, ``n_tx = t`` for customer ``c<e>`` at hour ``t``;
the view has a 1 h availability lag. The parent learnt "fraud iff amount >= 1000" (old concept);
the new labels say "fraud iff n_tx >= 20".
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl

from tests.features.factories import make_feature_store
from tests.registry.factories import run_validation_now, skops_bytes, table_csv_bytes, upload_file

N_ENTITIES = 20
N_TIMES = 48


def old_concept_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    e = rng.integers(0, N_ENTITIES, n)
    t = rng.integers(0, N_TIMES, n)
    X = pd.DataFrame({"amount": (100 * e + t).astype("float64"), "n_tx": t.astype("float64")})
    y = (X["amount"] >= 1000).astype(int).to_numpy()
    return X, y


def make_trainable(*, project, actor, estimator=None, n_entities: int = N_ENTITIES, n_times: int = N_TIMES,
                   model_name: str = "fraud"):
    """(feature store, RegisteredModel with the feature set, READY parent version v1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from apps.registry import services

    fs = make_feature_store(project=project, actor=actor, n_entities=n_entities, n_times=n_times)
    model = services.registered_model_create(project=project, actor=actor, name=model_name,
                                             task="binary_classification", input_contract=None,
                                             feature_set=fs.feature_set)
    X, y = old_concept_frame()
    est = estimator if estimator is not None else Pipeline([("scale", StandardScaler()),
                                                            ("clf", LogisticRegression(max_iter=500))])
    est.fit(X, y)
    version = services.model_version_upload(model=model, actor=actor, artifact=upload_file(skops_bytes(est), "m.skops"),
                                            holdout=upload_file(table_csv_bytes(X, y), "holdout.csv"))
    version = run_validation_now(version)
    assert version.status == "ready", version.status_reason
    return fs, model, version


def concept_labels(fs, *, n_entities: int = N_ENTITIES, n_times: int = N_TIMES, step_minutes: int = 60,
                   offset_minutes: int = 30) -> pl.DataFrame:
    """Labels under the new concept at ``offset`` past every ``step`` (fraud iff n_tx >= 20)."""
    rows = {"customer_id": [], "event_timestamp": [], "is_fraud": []}
    minutes = offset_minutes
    while minutes < n_times * 60:
        t_known = minutes // 60 - 1  # the 1 h lag: the value of hour t is usable from t + 1 h on
        for e in range(n_entities):
            rows["customer_id"].append(f"c{e}")
            rows["event_timestamp"].append(fs.start + timedelta(minutes=minutes))
            rows["is_fraud"].append(int(t_known >= 20))
        minutes += step_minutes
    return pl.DataFrame(rows)


def labels_csv(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode()

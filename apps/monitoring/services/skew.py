"""Training-serving skew of entity-key deployments."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from apps.deployments.models import Deployment, PredictionLog

from .common import rows_q

SKEW_SAMPLE = 500


def _same(a, b) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return (a is None or (isinstance(a, float) and math.isnan(a))) == \
            (b is None or (isinstance(b, float) and math.isnan(b)))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-6 * (1 + abs(float(b)))
    return str(a) == str(b)


def skew_check(*, deployment: Deployment, start: datetime, end: datetime, sample: int = SKEW_SAMPLE,
               seed: int = 0, first_request_id=None, last_request_id=None) -> dict[str, float]:
    """Training-serving skew of an entity-key deployment: a seeded sample of the window's own logged
    feature vectors (its rows, see ``rows_q``) is recomputed offline by the feature store's
    point-in-time join as of each request time; returns the mismatch rate per feature (``{}`` when not
    applicable)."""
    feature_set = getattr(deployment.registered_model, "feature_set", None)
    if deployment.input_mode != "entity" or feature_set is None:
        return {}
    from apps.features import services as fs

    keys = fs._lookup_plan(feature_set)["join_keys"]
    if len(keys) != 1:
        return {}
    ids = list(PredictionLog.objects.filter(rows_q(start=start, end=end, first_request_id=first_request_id,
                                                   last_request_id=last_request_id),
                                            deployment=deployment, entity_key__isnull=False)
               .order_by("id").values_list("id", flat=True))
    if not ids:
        return {}
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(sample, len(ids)), replace=False).tolist()
    rows = list(PredictionLog.objects.filter(id__in=chosen).order_by("id")
                .values_list("entity_key", "created_at", "inputs"))
    import polars as pl

    labels = pl.DataFrame({keys[0]: [r[0] for r in rows], "__as_of": [r[1] for r in rows]})
    frame = fs.training_set_build_frame(feature_set=feature_set, labels=labels, timestamp_column="__as_of")
    out = {}
    for name in feature_set.output_names:
        if name not in frame.columns:
            continue
        offline = frame.get_column(name).to_list()
        logged = [(r[2] or {}).get(name) for r in rows]
        out[name] = sum(not _same(a, b) for a, b in zip(logged, offline, strict=True)) / len(rows)
    return out

"""Monitoring test data: a ready binary-classifier version with a reference profile, a live
deployment, and logged predictions (bulk-inserted into the deployments app's PredictionLog)."""

import uuid
from datetime import timedelta

import numpy as np
import pandas as pd

CONTRACT = [{"name": "amount", "type": "float"}, {"name": "age", "type": "float"},
            {"name": "is_mobile", "type": "bool"}]


def world(rng, n, *, shift=0.0):
    """Inputs and the model's positive-class score; ``shift`` moves ``amount`` by shift × sd (sd 10)."""
    df = pd.DataFrame({"amount": rng.normal(50 + 10 * shift, 10, n), "age": rng.normal(40, 12, n),
                       "is_mobile": rng.random(n) < 0.3})
    score = 1 / (1 + np.exp(-(df["amount"].to_numpy() - 50) / 10))
    return df, score


def make_deployment(project, owner, *, slug="fraud-scorer", seed=0, window_kind="time"):
    """A live deployment. New deployments get count windows by default; these tests were written for
    hourly time windows, which they ask for (``window_kind="count"`` keeps the default)."""
    from apps.deployments.services import deployment_create
    from apps.monitoring.models import MonitorSettings
    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.registry.profile import build_reference_profile

    rng = np.random.default_rng(seed)
    df, score = world(rng, 5000)
    labels = (rng.random(len(score)) < score).astype(int)  # the model is calibrated by construction
    profile = build_reference_profile(df, CONTRACT, predictions=(score >= 0.5).astype(int),
                                      probabilities=np.column_stack([1 - score, score]), labels=labels)
    model = RegisteredModel.objects.create(project=project, name=f"{slug}-model", task="binary_classification",
                                           input_contract=CONTRACT, created_by=owner)
    version = ModelVersion.objects.create(model=model, version=1, status="ready", artifact_key="test",
                                          artifact_sha256="0" * 64, artifact_format="skops", classes=[0, 1],
                                          reference_profile=profile, created_by=owner)
    dep = deployment_create(project=project, actor=owner, version=version, slug=slug, owner=owner,
                            override_reason="first version live without review (test fixture)")
    if window_kind == "time":
        MonitorSettings.objects.update_or_create(deployment=dep, defaults={"window_kind": "time"})
    return dep


def log_predictions(deployment, *, n, start, seconds=600, shift=0.0, seed=1):
    """Bulk-insert ``n`` logged predictions spread over ``seconds`` from ``start``; returns request ids."""
    from apps.deployments.models import PredictionLog

    rng = np.random.default_rng(seed)
    df, score = world(rng, n, shift=shift)
    rows, ids = [], []
    batch = uuid.uuid4()
    offsets = np.sort(rng.uniform(0, seconds, n))
    records = df.to_dict("records")
    for i in range(n):
        rid = uuid.uuid4()
        ids.append(rid)
        p = float(score[i])
        rows.append(PredictionLog(request_id=rid, batch_id=batch, deployment_id=deployment.pk,
                                  version_id=deployment.production_version_id,
                                  created_at=start + timedelta(seconds=float(offsets[i])), inputs=records[i],
                                  output=int(p >= 0.5), probabilities={"0": 1 - p, "1": p},
                                  latency_ms=float(rng.gamma(2, 2))))
    PredictionLog.objects.bulk_create(rows, batch_size=2000)
    return ids, score

"""Readiness scenarios built with the owning apps' real services and their test factories.

Each helper creates what one app would hold in a real project: ready versions (registry), deployments
(deployments), logged traffic, windows, outcomes and alerts (monitoring), feature views and training
sets (features). Time travel is done only on ``created_at`` columns that record *when* something
happened, to place an upload weeks before its deployment.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from django.utils import timezone

from tests.deployments.factories import make_ready_version
from tests.monitoring.factories import log_predictions
from tests.monitoring.factories import make_deployment as make_monitored_deployment


def assess(project, key: str):
    from apps.readiness.assess import assessment_compute

    item = assessment_compute(project=project).item(key)
    assert item is not None, key
    return item


def ready_version(project, actor, *, name: str = "churn-model", **kw):
    return make_ready_version(project=project, actor=actor, name=name, **kw)


def deploy(project, actor, version, *, slug: str, owner="actor", go_live: bool = True):
    from apps.deployments.services import deployment_create

    return deployment_create(project=project, actor=actor, version=version, slug=slug,
                             owner=actor if owner == "actor" else owner, go_live=go_live,
                             override_reason="first version live without review (test fixture)" if go_live else "")


def uploaded_days_ago(version, days: float) -> None:
    from apps.registry.models import ModelVersion

    ModelVersion.objects.filter(pk=version.pk).update(created_at=timezone.now() - timedelta(days=days))


def live_with_traffic(project, actor, *, slug: str = "scorer", n: int = 200, minutes_ago: int = 30, shift: float = 0.0):
    """A live deployment of a version with a reference profile, and ``n`` logged predictions."""
    dep = make_monitored_deployment(project, actor, slug=slug)
    start = timezone.now() - timedelta(minutes=minutes_ago)
    ids, _ = log_predictions(dep, n=n, start=start, seconds=60 * max(1, minutes_ago - 1), shift=shift)
    return dep, ids, start


def scheduled_window(dep, start, *, minutes: int = 60):
    from apps.monitoring.models import MonitoringWindow
    from apps.monitoring.services import window_compute

    return window_compute(deployment=dep, start=start, end=start + timedelta(minutes=minutes),
                          trigger=MonitoringWindow.Trigger.SCHEDULE)


def outcomes(dep, actor, request_ids, *, label=1):
    from apps.monitoring.services import outcomes_ingest

    return outcomes_ingest(deployment=dep, actor=actor, items=[{"request_id": str(r), "label": label}
                                                               for r in request_ids])


def training_set(project, actor, store, *, name: str = "ts-1"):
    """A real point-in-time training set, built in-process by the same service the Celery task runs."""
    from apps.features import services
    from apps.projects.services import job_run
    from tests.features.factories import csv_bytes, labels_frame

    ts = services.training_set_request(project=project, actor=actor, name=name, feature_set=store.feature_set,
                                       labels_upload=csv_bytes(labels_frame(store)), labels_filename="labels.csv",
                                       label_columns=["is_fraud"])
    job_run(job_id=ts.job_id, body=lambda job: services.training_set_build_run(job=job))
    ts.refresh_from_db()
    assert ts.is_ready, ts.error
    return ts


def version_with_training_set(project, actor, store, ts, *, name: str = "fraud-fs"):
    """A version validated by the registry's real pipeline, trained on the feature set's columns, naming ``ts``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from apps.registry.services import registered_model_create
    from tests.registry.factories import register_ready_version

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"amount": rng.normal(100, 30, 300), "n_tx": rng.integers(0, 24, 300)})
    y = (X["amount"] + rng.normal(0, 10, 300) > 100).astype(int).to_numpy()
    model = registered_model_create(project=project, actor=actor, name=name, task="binary_classification",
                                    input_contract=None, feature_set=store.feature_set)
    # the training set has missing values (rows before a value was available): a NaN-tolerant estimator
    est = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    return register_ready_version(project, actor, est, X, y, ["amount", "n_tx"], "binary_classification",
                                  model=model, training_set=ts, code_ref="git:abc123")

"""Benchmark: one training job end to end vs the bare work it wraps.

    .venv/bin/python bench/training_job.py [--entities 2000] [--hours 48] [--labels 50000] [--repeat 3]

Runs against a throw-away SQLite database and artifact folder (a temporary SLIPWAY_DATA_DIR), in this
process (no broker): the same ``training_job_run`` body the Celery task runs under ``job_run``.

- slipway: ``training_job_create`` (labels checked and stored) + ``training_job_run`` — point-in-time
  join through the feature store, training set stored as Parquet with its report, time split, refit
  of a clone of the parent's estimator, candidate and parent evaluated on the holdout, registration
  through the registry's upload (artifact, holdout and training rows stored; validation job queued,
  not run);
- floor:   the same join (``features.services.training_set_join``), time split, ``clone().fit`` and
  the two holdout predictions, with nothing stored.

Prints both (best of --repeat), the ratio and the job's own step timings from its log.
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(data_dir: str) -> None:
    os.environ["SLIPWAY_DATA_DIR"] = data_dir
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def world(n_entities: int, n_hours: int, n_labels: int):
    import io

    import numpy as np
    import polars as pl
    from django.contrib.auth import get_user_model
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from apps.features import services as fsvc
    from apps.projects.services import job_run, project_create
    from apps.registry import services as rsvc

    user = get_user_model().objects.create_user("bench", password="x")
    project = project_create(actor=user, name="Bench", slug="bench")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    e = np.repeat(np.arange(n_entities), n_hours)
    t = np.tile(np.arange(n_hours), n_entities)
    rng = np.random.default_rng(0)
    feats = pl.DataFrame({"customer_id": [f"c{i}" for i in e],
                          "event_timestamp": [start + timedelta(hours=int(h)) for h in t],
                          "amount": rng.normal(100, 30, len(e)), "n_tx": t.astype("int64")})
    buf = io.BytesIO()
    feats.write_parquet(buf)
    entity = fsvc.entity_create(project=project, actor=user, name="customer", join_key="customer_id")
    source = fsvc.data_source_upload(project=project, actor=user, name="tx", upload=buf.getvalue(),
                                     filename="tx.parquet")
    fsvc.feature_view_create(project=project, actor=user, name="stats", entity=entity, source=source.source,
                             timestamp_column="event_timestamp", features=[{"name": "amount"}, {"name": "n_tx"}],
                             availability_lag=timedelta(hours=1), ttl=None, online=False)
    fset = fsvc.feature_set_create(project=project, actor=user, name="inputs", references=["stats:amount", "stats:n_tx"])
    model = rsvc.registered_model_create(project=project, actor=user, name="m", task="binary_classification",
                                         input_contract=None, feature_set=fset)
    X = np.column_stack([rng.normal(100, 30, 500), rng.integers(0, n_hours, 500)])
    import pandas as pd

    Xdf = pd.DataFrame(X, columns=["amount", "n_tx"])
    y = (Xdf["amount"] > 100).astype(int)
    est = Pipeline([("s", StandardScaler()), ("c", LogisticRegression(max_iter=500))]).fit(Xdf, y)
    import skops.io as sio

    hold = io.BytesIO(Xdf.assign(target=y).to_csv(index=False).encode())
    parent = rsvc.model_version_upload(model=model, actor=user, artifact=io.BytesIO(sio.dumps(est)),
                                       filename="m.skops", holdout=hold, holdout_filename="h.csv")
    job_run(job_id=parent.job_id, body=lambda job: rsvc.model_version_validate(job=job))
    parent.refresh_from_db()
    assert parent.status == "ready", parent.status_reason
    le = rng.integers(0, n_entities, n_labels)
    minutes = rng.integers(60, n_hours * 60, n_labels)
    times = [start + timedelta(minutes=int(m)) for m in minutes]
    labels = pl.DataFrame({"customer_id": [f"c{i}" for i in le], "event_timestamp": times,
                           "is_fraud": (minutes // 60 > n_hours // 2).astype("int64")})
    labels = labels.unique(subset=["customer_id", "event_timestamp"])
    return user, model, parent, fset, labels


def run_job(user, model, parent, labels):
    from apps.projects.services import job_run
    from apps.training.models import TrainingJob
    from apps.training.services import jobs as training

    t0 = time.perf_counter()
    tj = training.training_job_create(model=model, actor=user, parent_version=parent, labels=labels)
    job_run(job_id=tj.job_id, body=lambda job: training.training_job_run(job=job))
    elapsed = time.perf_counter() - t0
    tj = TrainingJob.objects.select_related("job").get(pk=tj.pk)
    assert tj.job.status == "succeeded", tj.job.error
    return elapsed, tj


def run_floor(parent, fset, labels):
    from sklearn.base import clone

    from apps.features.services import training_set_join
    from apps.registry.loading import load_estimator
    from apps.registry.timesplit import time_split

    t0 = time.perf_counter()
    result, _ = training_set_join(feature_set=fset, labels=labels, timestamp_column="event_timestamp")
    frame = result.frame.drop_nulls(subset=["amount", "n_tx"])
    split = time_split(frame.get_column("event_timestamp").to_numpy(), holdout_fraction=0.2)
    train, hold = frame[split.train_index.tolist()], frame[split.holdout_index.tolist()]
    parent_est = load_estimator(parent)
    est = clone(parent_est).fit(train.select(["amount", "n_tx"]).to_pandas(), train["is_fraud"].to_numpy())
    est.predict_proba(hold.select(["amount", "n_tx"]).to_pandas())
    parent_est.predict_proba(hold.select(["amount", "n_tx"]).to_pandas())
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=2000)
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--labels", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="slipway-bench-training-") as tmp:
        setup_django(tmp)
        user, model, parent, fset, labels = world(args.entities, args.hours, args.labels)
        print(f"feature rows {args.entities * args.hours:,}, label rows {labels.height:,}")
        floor = min(run_floor(parent, fset, labels) for _ in range(args.repeat))
        runs = [run_job(user, model, parent, labels) for _ in range(args.repeat)]
        best, tj = min(runs, key=lambda r: r[0])
        print(f"floor (join + split + fit + 2 predictions): {floor * 1000:8.0f} ms")
        print(f"training job end to end:                    {best * 1000:8.0f} ms   ratio {best / floor:.2f}x")
        print(f"holdout accuracy candidate {tj.metrics['candidate']['accuracy']:.3f} vs parent "
              f"{tj.metrics['parent']['accuracy']:.3f} on {tj.metrics['n_holdout']:,} rows")
        print("job log:\n" + tj.logs)


if __name__ == "__main__":
    main()

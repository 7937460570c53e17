"""The demo organisation: four projects at different stages, loaded through the real services.

    python manage.py seed_demo        (also run by ``rundemo``; idempotent)

What it builds (every number comes out of the real pipeline, nothing is written as a result):

- **Customer churn** (``churn``) — in production, monitored, drifting. Deterministic daily customer
  activity (an availability lag of one day) is uploaded to the feature store; labels are joined
  point-in-time into a training set; a model trained on it is registered and validated by the
  registry; ``churn-api`` serves it by entity key from the online store; traffic goes through the
  prediction path and its log; monitoring computes count windows; outcomes arrive for the older
  predictions only (labels come late); then a product outage shifts the activity data (a drift
  episode), drift windows open an alert, and — when retraining exists — the policy retrains, shadows
  and opens a promotion request that waits for a reviewer; otherwise the data scientist does the
  same by hand.
- **Card fraud** (``fraud``) — a validated model behind a deployment that is not live yet: stage
  *shadow* (it waits for its first approval).
- **Support ticket routing** (``support``) — a validated model uploaded with its training file,
  nothing deployed: stage *registered*.
- **Price elasticity** (``pricing``) — stuck at *prototype*: its only upload was rejected by the
  registry's validation (the model does not take the declared inputs).

Work that normally runs in Celery is executed in-process by calling the same service function the task
calls (``job_run``), unless ``workers=True`` (the CI test), where the demo waits for the real workers.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.utils import timezone

from apps.projects.demo import DEMO_PASSWORD, DEMO_USERS, demo_project_ensure, demo_users_ensure
from apps.projects.models import Job, Project

DEMO_VERSION = 1
DEMO_SLUGS = ("churn", "fraud", "support", "pricing")
N_CUSTOMERS = 300
N_CARDS = 200
WINDOW_COUNT = 200  # monitoring: one window every 200 predictions
FEATURES = ["sessions_7d", "support_tickets_30d", "tenure_months", "monthly_spend"]


@dataclass
class Ctx:
    users: dict
    workers: bool
    out: object
    anchor: datetime
    started: float = field(default_factory=time.monotonic)
    notes: list = field(default_factory=list)

    def say(self, msg: str) -> None:
        if self.out is not None:
            self.out.write(f"  [{time.monotonic() - self.started:5.1f}s] {msg}")


# --- running jobs ------------------------------------------------------------------------------------


PENDING: list[tuple[str, str]] = []  # (job id, task name) created while the demo runs jobs in-process


@contextlib.contextmanager
def _jobs_in_process(enabled: bool):
    """In-process mode: a job a service creates is recorded instead of being sent to a broker, and the demo
    runs it here by calling the Celery task's function with the job id (the task calls ``job_run`` with
    the app's service, as a worker would). Nothing is sent for a later worker to run a second time."""
    if not enabled:
        yield
        return
    from apps.projects import services as project_services

    original = project_services.job_enqueue

    def record(*, job_id, task, queue=None):
        PENDING.append((str(job_id), task if isinstance(task, str) else task.name))

    project_services.job_enqueue = record
    try:
        yield
    finally:
        project_services.job_enqueue = original
        PENDING.clear()


def _run_pending(ctx: Ctx, *, timeout: float = 300) -> int:
    """Finish every job the demo's services created so far (in-process, or by waiting for the workers)."""
    if ctx.workers:
        deadline = time.monotonic() + timeout
        while Job.objects.filter(status__in=["queued", "running"], project__slug__in=DEMO_SLUGS).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("demo jobs did not finish: is a Celery worker running?")
            time.sleep(0.2)
        return 0
    from celery import current_app as app

    app.loader.import_default_modules()
    done = 0
    while PENDING:
        job_id, task = PENDING.pop(0)
        if Job.objects.filter(pk=job_id, status="queued").exists():
            app.tasks[task].run(job_id)  # the task's own function: job_run + the app's service
            done += 1
    return done


def _run(ctx: Ctx, job_id, body, *, timeout: float = 300) -> Job:
    """Finish one job: run it in-process, or (workers=True) wait for the real worker to finish it."""
    from apps.projects.services import job_run

    if not ctx.workers:
        job_run(job_id=job_id, body=body)
    else:
        deadline = time.monotonic() + timeout
        while not Job.objects.get(pk=job_id).is_final:
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} did not finish within {timeout:.0f}s: is a worker running?")
            time.sleep(0.2)
    job = Job.objects.get(pk=job_id)
    if job.status != "succeeded":
        raise RuntimeError(f"demo job {job.title} {job.status}: {job.error}")
    return job


def _validate(ctx: Ctx, version):
    from apps.registry import services as registry

    job = Job.objects.get(pk=version.job_id)
    if not job.is_final:
        if ctx.workers:
            deadline = time.monotonic() + 300
            while not Job.objects.get(pk=job.pk).is_final and time.monotonic() < deadline:
                time.sleep(0.2)
        else:
            from apps.projects.services import job_run

            job_run(job_id=job.pk, body=lambda j: registry.model_version_validate(job=j))
    version.refresh_from_db()
    return version


# --- deterministic data --------------------------------------------------------------------------------


def _day(anchor: datetime, offset: int) -> datetime:
    return anchor + timedelta(days=offset)


def churn_customers(seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"C{i:04d}" for i in range(N_CUSTOMERS)]
    return pd.DataFrame({
        "customer_id": ids,
        "engagement": rng.gamma(3.0, 3.0, N_CUSTOMERS),  # sessions per week, typical
        "friction": rng.gamma(1.2, 1.0, N_CUSTOMERS),  # support tickets per month, typical
        "tenure0": rng.integers(1, 60, N_CUSTOMERS).astype(float),
        "spend": rng.normal(45, 15, N_CUSTOMERS).clip(8, 140),
    })


def churn_activity(anchor: datetime, *, first: int, last: int, outage_from: int | None = None,
                   seed: int = 11) -> pd.DataFrame:
    """One row per customer and day (days ``first``..``last`` relative to ``anchor``). From ``outage_from``
    on, a product outage halves sessions and doubles support tickets: the drift episode."""
    cust = churn_customers()
    rows = []
    for d in range(first, last + 1):
        rng = np.random.default_rng([seed, d + 1000])  # per day: a later upload repeats the same history
        outage = outage_from is not None and d >= outage_from
        sessions = rng.poisson(cust["engagement"].to_numpy() * (0.45 if outage else 1.0)).astype(float)
        tickets = rng.poisson(cust["friction"].to_numpy() * (2.5 if outage else 1.0)).astype(float)
        day = _day(anchor, d)
        for i, cid in enumerate(cust["customer_id"]):
            rows.append((cid, day, sessions[i], tickets[i], float(cust["tenure0"].iat[i] + (d + 60) // 30),
                         round(float(cust["spend"].iat[i] + rng.normal(0, 2)), 2)))
    return pd.DataFrame(rows, columns=["customer_id", "event_timestamp", *FEATURES])


def _churn_probability(cust: pd.DataFrame) -> np.ndarray:
    logit = (-1.0 - 0.35 * (cust["engagement"] - 9) / 3 + 0.9 * (cust["friction"] - 1.2)
             - 0.02 * (cust["tenure0"] - 30))
    return 1 / (1 + np.exp(-logit.to_numpy()))


def churn_labels(anchor: datetime, seed: int = 5) -> pd.DataFrame:
    """Churned within 30 days, observed at four dates per customer; driven by low engagement, high
    friction and short tenure (what the features show)."""
    cust = churn_customers()
    rng = np.random.default_rng(seed)
    p = _churn_probability(cust)
    rows = []
    for offset in (-50, -40, -30, -20):
        y = (rng.random(N_CUSTOMERS) < p).astype(int)
        ts = _day(anchor, offset) + timedelta(hours=12)
        rows += [(cid, ts, int(v)) for cid, v in zip(cust["customer_id"], y, strict=True)]
    return pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "churned"])


def churn_outcomes(seed: int = 99) -> dict:
    """What happened to each customer after the demo's predictions (the ground truth posted later)."""
    cust = churn_customers()
    y = (np.random.default_rng(seed).random(N_CUSTOMERS) < _churn_probability(cust)).astype(int)
    return dict(zip(cust["customer_id"], map(int, y), strict=True))


def card_activity(anchor: datetime, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cards = [f"K{i:04d}" for i in range(N_CARDS)]
    risk = rng.beta(1.2, 12, N_CARDS)
    rows, labels = [], []
    for h in range(0, 24 * 20, 6):  # every 6 hours for 20 days
        t = anchor - timedelta(days=21) + timedelta(hours=h)
        amount = rng.lognormal(3.5 + 2.0 * risk, 0.6)
        foreign = (rng.random(N_CARDS) < 0.05 + risk).astype(float)
        velocity = rng.poisson(2 + 10 * risk).astype(float)
        rows += [(c, t, round(float(amount[i]), 2), foreign[i], velocity[i]) for i, c in enumerate(cards)]
        if h % 24 == 12:
            fraud = (rng.random(N_CARDS) < 0.02 + 0.6 * risk).astype(int)
            labels += [(c, t + timedelta(hours=3), int(fraud[i])) for i, c in enumerate(cards)]
    frame = pd.DataFrame(rows, columns=["card_id", "event_timestamp", "amount_6h", "foreign_share", "tx_count_6h"])
    return frame, pd.DataFrame(labels, columns=["card_id", "event_timestamp", "is_fraud"])


def _csv(frame: pd.DataFrame) -> bytes:
    df = frame.copy()
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]) or isinstance(df[c].iloc[0], datetime):
            df[c] = pd.to_datetime(df[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return df.to_csv(index=False).encode()


# --- building blocks (get-or-create around the real services) --------------------------------------------


def _entity(ctx, project, name, join_key, description):
    from apps.features.models import Entity
    from apps.features.services import entity_create

    return Entity.objects.filter(project=project, name=name).first() or entity_create(
        project=project, actor=ctx.users["dana"], name=name, join_key=join_key, description=description)


def _source(ctx, project, name, frame, description, *, new_version: bool = False):
    from apps.features.models import DataSource
    from apps.features.services import data_source_upload

    existing = DataSource.objects.filter(project=project, name=name).first()
    if existing is not None and existing.latest_version and not new_version:
        return existing.latest_version
    return data_source_upload(project=project, actor=ctx.users["dana"], name=name, upload=_csv(frame),
                              filename=f"{name}.csv", description=description)


def _view(ctx, project, name, **kw):
    from apps.features.models import FeatureView
    from apps.features.services import feature_view_create

    return FeatureView.objects.filter(project=project, name=name, is_current=True).first() or feature_view_create(
        project=project, actor=ctx.users["dana"], name=name, **kw)


def _feature_set(ctx, project, name, references, description=""):
    from apps.features.models import FeatureSet
    from apps.features.services import feature_set_create

    return FeatureSet.objects.filter(project=project, name=name).first() or feature_set_create(
        project=project, actor=ctx.users["dana"], name=name, references=references, description=description)


def _training_set(ctx, project, name, feature_set, labels: pd.DataFrame, label_column: str):
    from apps.features import services as features
    from apps.features.models import TrainingSet

    ts = TrainingSet.objects.filter(project=project, name=name).first()
    if ts is None:
        ts = features.training_set_request(project=project, actor=ctx.users["dana"], name=name,
                                           feature_set=feature_set, labels_upload=_csv(labels),
                                           labels_filename=f"{name}-labels.csv", label_columns=[label_column])
    if not ts.is_ready:
        _run(ctx, ts.job_id, lambda job: features.training_set_build_run(job=job))
        ts.refresh_from_db()
    return ts


def _training_frame(ts) -> pd.DataFrame:
    from apps.common.storage import artifact_store

    return pd.read_parquet(artifact_store().path(ts.artifact_key))


def _fit(frame: pd.DataFrame, features: list[str], target: str, ts_column: str):
    """Fit on the earlier 80 % (by time), keep the last 20 % as the holdout, like a notebook would."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = frame.sort_values(ts_column).reset_index(drop=True)
    cut = int(len(frame) * 0.8)
    train, hold = frame.iloc[:cut], frame.iloc[cut:]
    est = HistGradientBoostingClassifier(max_iter=60, learning_rate=0.08, max_depth=3, random_state=0)
    est.fit(train[features], train[target])
    holdout = hold[features + [target]].dropna()
    return est, holdout


def _upload(ctx, model, est, holdout: pd.DataFrame, target: str, *, training_set=None, code_ref="",
            training_file: pd.DataFrame | None = None, card: str = "", key: str):
    import skops.io as sio

    from apps.registry.services import model_version_upload

    version = model_version_upload(
        model=model, actor=ctx.users["dana"], artifact=io.BytesIO(sio.dumps(est)), filename=f"{model.name}.skops",
        holdout=io.BytesIO(holdout.to_csv(index=False).encode()), holdout_filename="holdout.csv",
        holdout_target=target, training_set=training_set, code_ref=code_ref, model_card=card,
        training_data=io.BytesIO(training_file.to_csv(index=False).encode()) if training_file is not None else None,
        training_data_filename="training.csv" if training_file is not None else "",
        idempotency_key=f"demo-{key}")
    return _validate(ctx, version)


def _registered_model(ctx, project, name, *, task="binary_classification", feature_set=None, contract=None,
                      description=""):
    from apps.registry.models import RegisteredModel
    from apps.registry.services import registered_model_create

    return RegisteredModel.objects.filter(project=project, name=name).first() or registered_model_create(
        project=project, actor=ctx.users["dana"], name=name, task=task, input_contract=contract,
        feature_set=feature_set, description=description)


def _predict(slug: str, key: str, body: dict) -> dict:
    """One call of the standard prediction path (``serving.predict``, what /predict runs)."""
    import json

    from apps.deployments import serving

    raw = json.dumps(body).encode()
    resp = serving.predict(serving.Request(slug=slug, content_type="application/json", content_length=len(raw),
                                           authorization="", api_key=key, read=io.BytesIO(raw).read,
                                           request_id=serving.new_request_id()))
    if resp.status != 200:
        raise RuntimeError(f"prediction on {slug} failed ({resp.status}): {resp.body[:300]!r}")
    return json.loads(resp.body)


def _flush_predictions(deployment, expected: int, timeout: float = 60) -> None:
    """Move the spooled prediction log into the database (the drainer's job) and wait until it is there."""
    from apps.deployments import logpipe
    from apps.deployments.models import PredictionLog

    logpipe.flush_own_segment()
    logpipe._writer = None  # the next prediction opens a fresh segment
    deadline = time.monotonic() + timeout
    while PredictionLog.objects.filter(deployment=deployment).count() < expected:
        logpipe.drain()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the prediction log of {deployment.slug} did not reach {expected} rows")
        time.sleep(0.1)


def _snapshot(ctx, project, note: str) -> None:
    from apps.readiness.services import readiness_snapshot_save

    readiness_snapshot_save(project=project, actor=ctx.users["max"], note=note)


def _mark_done(ctx, project) -> None:
    from apps.projects.services import project_settings_update

    project_settings_update(project=project, actor=ctx.users["olivia"], values={"demo": DEMO_VERSION})


# --- the projects -------------------------------------------------------------------------------------------


def demo_churn(ctx: Ctx) -> Project:
    from apps.deployments.models import Deployment
    from apps.deployments.services import deployment_api_key_create, deployment_create
    from apps.features.services import feature_view_materialize
    from apps.monitoring import services as monitoring
    from apps.readiness.services import readiness_answer_set

    users, anchor = ctx.users, ctx.anchor
    project = demo_project_ensure(users=users, slug="churn", name="Customer churn",
                                  description="Predict which subscribers cancel in the next 30 days, so retention "
                                              "can call them first.")
    if project.settings.get("demo") == DEMO_VERSION:
        ctx.say("churn: already loaded")
        return project
    ctx.say("churn: feature store (customer activity, availability lag 1 day)")
    customer = _entity(ctx, project, "customer", "customer_id", "A subscriber")
    history = churn_activity(anchor, first=-60, last=-4)
    src = _source(ctx, project, "customer-activity", history, "Daily product activity per subscriber (lands a day late)")
    view = _view(ctx, project, "customer-activity", entity=customer, source=src.source,
                 timestamp_column="event_timestamp",
                 features=[{"name": "sessions_7d", "description": "Sessions in the last 7 days"},
                           {"name": "support_tickets_30d", "description": "Support tickets in the last 30 days"},
                           {"name": "tenure_months", "description": "Months since sign-up"},
                           {"name": "monthly_spend", "description": "Current monthly bill (EUR)"}],
                 availability_lag=timedelta(days=1), ttl=timedelta(days=7), online=True,
                 freshness_sla=timedelta(days=2), materialize_every=timedelta(days=1), tags=["product", "daily"],
                 description="Daily activity aggregates; the warehouse job lands each day's values the next day.")
    fs = _feature_set(ctx, project, "churn-inputs", [f"customer-activity:{f}" for f in FEATURES],
                      "Inputs of the churn model")
    ctx.say("churn: point-in-time training set")
    ts = _training_set(ctx, project, "churn-2024-q4", fs, churn_labels(anchor), "churned")
    frame = _training_frame(ts)
    names = fs.output_names
    est, holdout = _fit(frame, names, "churned", "event_timestamp")
    model = _registered_model(ctx, project, "churn-model", feature_set=fs,
                              description="Gradient-boosted trees on product activity.")
    ctx.say("churn: upload v1 and registry validation")
    v1 = _upload(ctx, model, est, holdout, "churned", training_set=ts, code_ref="git:churn-model@4f2a9c1",
                 card="Trained on the churn-2024-q4 training set; holdout = latest 20 % by time.", key="churn-v1")
    _snapshot(ctx, project, "Model registered")

    dep = Deployment.objects.filter(slug="churn-api").first()
    if dep is None:
        dep = deployment_create(project=project, actor=users["olivia"], version=v1, slug="churn-api",
                                name="Churn score", owner=users["dana"], input_mode="entity",
                                reason="First production version",
                                override_reason="Demo: the first churn model goes live at once (owner override)")
    feature_view_materialize(view=view)
    from apps.deployments import serving

    serving.CACHE.clear()  # this process may have served an earlier database (tests): forget its deployments
    _key, plaintext = deployment_api_key_create(deployment=dep, actor=users["dana"], name="retention-service")
    ms = monitoring.monitor_settings_update(deployment=dep, actor=users["ana"], window_kind="count",
                                            window_count=WINDOW_COUNT)
    proba = est.predict_proba(holdout[names])[:, 1]
    monitoring.calibration_fit(deployment=dep, actor=users["ana"], scores=list(map(float, proba)),
                               labels=list(map(int, holdout["churned"])), source="churn-model v1 holdout")
    rule = monitoring.alert_rule_create(deployment=dep, actor=users["ana"], name="Input drift",
                                        metric="share_drifted", comparator="gt", threshold=0.3, consecutive=1,
                                        severity="warning", channels=["email"], emails=["ml-oncall@example.com"],
                                        cooldown_minutes=60, owner=users["ana"])
    monitoring.alert_rule_create(deployment=dep, actor=users["ana"], name="Accuracy below 60 %",
                                 metric="realized_accuracy", comparator="lt", threshold=0.6, consecutive=2,
                                 severity="critical", channels=["email"], emails=["ml-oncall@example.com"],
                                 owner=users["ana"])
    ctx.say("churn: normal traffic through the prediction API")
    rng = np.random.default_rng(21)
    customers = churn_customers()["customer_id"].tolist()
    request_ids = []
    for _ in range(3):  # three windows of normal traffic
        for _chunk in range(WINDOW_COUNT // 50):
            keys = list(rng.choice(customers, 50, replace=False))
            out = _predict("churn-api", plaintext, {"entities": keys})
            request_ids += [(p["request_id"], k) for p, k in zip(out["predictions"], keys, strict=True)]
    _flush_predictions(dep, len(request_ids))
    _monitoring_tick_settled()
    ms.refresh_from_db()
    _snapshot(ctx, project, "Live with monitoring")

    ctx.say("churn: outcomes for the older predictions (labels arrive late)")
    truth = churn_outcomes()
    labelled = request_ids[: 2 * WINDOW_COUNT]  # the newest window has no labels yet
    monitoring.outcomes_ingest(deployment=dep, actor=users["ana"],
                               items=[{"request_id": rid, "label": int(truth[k])} for rid, k in labelled])
    monitoring.performance_refresh(deployment_id=dep.pk, since=anchor - timedelta(days=2),
                                   until=timezone.now() + timedelta(minutes=1))

    ctx.say("churn: a product outage shifts the activity data (drift episode)")
    outage = churn_activity(anchor, first=-60, last=0, outage_from=-3)
    _source(ctx, project, "customer-activity", outage, "Daily product activity per subscriber (lands a day late)",
            new_version=True)
    feature_view_materialize(view=view)
    for _ in range(2):  # two windows of drifted traffic
        for _chunk in range(WINDOW_COUNT // 50):
            keys = list(rng.choice(customers, 50, replace=False))
            out = _predict("churn-api", plaintext, {"entities": keys})
            request_ids += [(p["request_id"], k) for p, k in zip(out["predictions"], keys, strict=True)]
    _flush_predictions(dep, len(request_ids))
    _monitoring_tick_settled()
    ctx.say("churn: answers and notes from the manager")
    for key, answer, note in [
        ("handoff.oncall", "yes", "Data-science on-call rota in PagerDuty, weekly hand-over on Mondays."),
        ("mlts.data.2", "manual", "Permutation importance reviewed at the Q4 model review."),
        ("mlts.data.5", "manual", "Customer ids are pseudonymised; raw data access goes through the data office."),
        ("mlts.model.3", "automated", "Hyperparameters from a 40-trial random search in the training notebook."),
        ("mlts.model.5", "manual", "A logistic regression baseline is 0.04 AUC behind (documented in the card)."),
        ("mlts.infra.2", "no", "No unit tests for the training code yet."),
    ]:
        readiness_answer_set(project=project, actor=users["max"], item_key=key, answer=answer, note=note)

    def fresh_traffic(n: int = 250) -> None:
        """Traffic after the candidate was registered: a shadow run scores out-of-sample requests only."""
        for _chunk in range(n // 50):
            keys = list(rng.choice(customers, 50, replace=False))
            out = _predict("churn-api", plaintext, {"entities": keys})
            request_ids.extend((p["request_id"], k) for p, k in zip(out["predictions"], keys, strict=True))
        _flush_predictions(dep, len(request_ids))

    _retraining_or_manual(ctx, project, dep, rule, est_names=names, fresh_traffic=fresh_traffic)
    _snapshot(ctx, project, "Drift episode")
    _mark_done(ctx, project)
    return project


def _monitoring_tick_settled() -> None:
    """The demo has flushed its prediction log: every row is in, so monitoring may close the windows at
    once instead of waiting ``MONITORING_LOG_SETTLE_SECONDS`` for drainers of other processes."""
    from django.conf import settings

    from apps.monitoring import services as monitoring

    monitoring.monitoring_tick(now=timezone.now() + timedelta(seconds=settings.MONITORING_LOG_SETTLE_SECONDS + 1))


def _retraining_or_manual(ctx: Ctx, project, dep, rule, *, est_names, fresh_traffic) -> None:
    """The drift episode's follow-up: with retraining policies, the policy fires on the open drift alert and
    runs its chain (training job → validated version → shadow run → promotion request); without them, the
    data scientist does the same steps by hand. Either way a person must approve the promotion."""
    from apps.readiness.assess import promotion_request_model, retraining_policy_model, shadow_run_model

    if promotion_request_model() is not None and promotion_request_model().objects.filter(
            deployment=dep, status="open").exists():
        return
    if retraining_policy_model() is not None:
        _retraining_chain(ctx, dep, rule, fresh_traffic)
    elif shadow_run_model() is not None:
        _manual_candidate(ctx, project, dep, fresh_traffic)
    else:
        ctx.notes.append("Shadow runs, promotion requests and retraining policies are not in this build: the churn "
                         "project shows the drift alert, but no retraining or promotion request.")
        ctx.say("churn: no retraining, shadow or promotion in this build")


def _retraining_chain(ctx: Ctx, dep, rule, fresh_traffic) -> None:
    from apps.training.models import PolicyFiring
    from apps.training.services.retraining import retraining_evaluate, retraining_policy_save

    ctx.say("churn: retraining policy fires on the drift alert (training → validation → shadow → request)")
    policy = retraining_policy_save(deployment=dep, actor=ctx.users["dana"],
                                    triggers=[{"kind": "alert_rule", "rule_id": rule.pk}], min_new_labels=100,
                                    cooldown_minutes=24 * 60, training_window_days=90,
                                    note="Retrain when the inputs drift; a reviewer still decides.")
    firings = [f for f in retraining_evaluate(policy=policy) if f.status != "skipped"]
    if not firings:
        why = "; ".join(f.outcome for f in PolicyFiring.objects.filter(policy=policy)) or "no episode"
        ctx.notes.append(f"The retraining policy did not fire: {why}")
        return
    _advance_until_request(ctx, firings, fresh_traffic)


def _advance_until_request(ctx: Ctx, firings, fresh_traffic, *, timeout: float = 240) -> None:
    from apps.training.services.retraining import retraining_advance

    shadow_tick = _optional_fn("apps.releases.services.shadow", "shadow_tick")
    deadline = time.monotonic() + timeout
    sent = False
    while time.monotonic() < deadline:
        _run_pending(ctx)
        if shadow_tick is not None:
            shadow_tick()
        firings = [retraining_advance(firing=f) for f in firings]
        if not sent and any(f.status == "shadow" for f in firings):
            ctx.say("churn: traffic after the candidate was registered (its shadow run's out-of-sample evidence)")
            fresh_traffic()
            sent = True
            continue
        if all(f.status not in ("training", "validating", "shadow") for f in firings):
            break
        time.sleep(0.2 if ctx.workers else 0)
    for f in firings:
        ctx.say(f"churn: retraining firing #{f.pk}: {f.status} — {f.outcome}")
        if f.status != "awaiting_review":
            ctx.notes.append(f"Retraining firing #{f.pk} ended as {f.status}: {f.outcome}")


def _optional_fn(module: str, name: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _manual_candidate(ctx: Ctx, project, dep, fresh_traffic) -> None:
    """No retraining policies: Dana retrains on fresh labels by hand, shadows the candidate and asks for
    promotion (the same steps the policy would take)."""
    from apps.releases.services.promotion import promotion_request_open
    from apps.releases.services.shadow import shadow_run_start

    ctx.say("churn: the data scientist retrains by hand, shadows the candidate, requests promotion")
    fs = dep.registered_model.feature_set
    labels = churn_labels(ctx.anchor, seed=8)
    labels["event_timestamp"] = labels["event_timestamp"] + timedelta(days=15)
    ts = _training_set(ctx, project, "churn-2024-q4-refresh", fs, labels, "churned")
    est, holdout = _fit(_training_frame(ts), fs.output_names, "churned", "event_timestamp")
    v2 = _upload(ctx, dep.registered_model, est, holdout, "churned", training_set=ts,
                 code_ref="git:churn-model@7d3e0b2", key="churn-v2")
    run = shadow_run_start(deployment=dep, actor=ctx.users["dana"], candidate=v2, backfill_hours=24)
    fresh_traffic()  # out-of-sample requests: the run scores only traffic after v2 was registered
    _run_pending(ctx)
    shadow_tick = _optional_fn("apps.releases.services.shadow", "shadow_tick")
    if shadow_tick is not None:
        shadow_tick()
    run.refresh_from_db()
    promotion_request_open(deployment=dep, actor=ctx.users["dana"], candidate=v2,
                           justification="Refit on fresher labels after the outage; shadowed on production traffic.")


def demo_fraud(ctx: Ctx) -> Project:
    from apps.deployments.models import Deployment
    from apps.deployments.services import deployment_create

    users = ctx.users
    project = demo_project_ensure(users=users, slug="fraud", name="Card fraud",
                                  description="Score card transactions for fraud; the bank's rules engine still "
                                              "decides until the model is approved.")
    if project.settings.get("demo") == DEMO_VERSION:
        ctx.say("fraud: already loaded")
        return project
    ctx.say("fraud: feature store, training set, validated model, deployment waiting for approval")
    activity, labels = card_activity(ctx.anchor)
    card = _entity(ctx, project, "card", "card_id", "A payment card")
    src = _source(ctx, project, "card-activity", activity, "6-hourly card aggregates from the payments stream")
    _view(ctx, project, "card-activity", entity=card, source=src.source, timestamp_column="event_timestamp",
          features=[{"name": "amount_6h"}, {"name": "foreign_share"}, {"name": "tx_count_6h"}],
          availability_lag=timedelta(minutes=30), ttl=timedelta(days=1), online=True,
          freshness_sla=timedelta(hours=12), tags=["payments"], description="Card activity, 30 minutes behind.")
    fs = _feature_set(ctx, project, "fraud-inputs", ["card-activity:amount_6h", "card-activity:foreign_share",
                                                     "card-activity:tx_count_6h"])
    ts = _training_set(ctx, project, "fraud-oct", fs, labels, "is_fraud")
    est, holdout = _fit(_training_frame(ts), fs.output_names, "is_fraud", "event_timestamp")
    model = _registered_model(ctx, project, "fraud-model", feature_set=fs)
    v1 = _upload(ctx, model, est, holdout, "is_fraud", training_set=ts, code_ref="git:fraud@9e81d07", key="fraud-v1")
    dep = Deployment.objects.filter(slug="fraud-api").first()
    if dep is None:
        dep = deployment_create(project=project, actor=users["olivia"], version=v1, slug="fraud-api",
                                name="Fraud score", owner=users["dana"], input_mode="entity", go_live=False,
                                reason="Waiting for its first approval")
    from apps.readiness.assess import promotion_request_model

    requests = promotion_request_model()
    if requests is not None and not requests.objects.filter(deployment=dep).exists():
        from apps.releases.services.promotion import promotion_request_open

        promotion_request_open(deployment=dep, actor=users["dana"], candidate=v1,
                               justification="First version of the fraud score. Offline AUC on the October holdout; "
                                             "the rules engine keeps deciding until this is approved.")
    _snapshot(ctx, project, "Deployed, not live")
    _mark_done(ctx, project)
    return project


def demo_support(ctx: Ctx) -> Project:
    from sklearn.ensemble import HistGradientBoostingClassifier

    project = demo_project_ensure(users=ctx.users, slug="support", name="Support ticket routing",
                                  description="Route incoming tickets to billing or technical support.")
    if project.settings.get("demo") == DEMO_VERSION:
        ctx.say("support: already loaded")
        return project
    ctx.say("support: a model uploaded with its training file (registered, not deployed)")
    rng = np.random.default_rng(17)
    n = 600
    frame = pd.DataFrame({"words": rng.poisson(60, n).astype(float), "mentions_invoice": rng.integers(0, 2, n).astype(float),
                          "mentions_error": rng.integers(0, 2, n).astype(float), "account_age_days": rng.gamma(3, 200, n)})
    frame["billing"] = ((frame["mentions_invoice"] * 2 - frame["mentions_error"] + rng.normal(0, 0.7, n)) > 0.5).astype(int)
    names = ["words", "mentions_invoice", "mentions_error", "account_age_days"]
    est = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(frame[names][:480], frame["billing"][:480])
    model = _registered_model(ctx, project, "ticket-router", contract=[{"name": c, "type": "float"} for c in names])
    _upload(ctx, model, est, frame[names + ["billing"]][480:], "billing", training_file=frame[:480],
            code_ref="git:support-ml@1c07e55", key="support-v1")
    _snapshot(ctx, project, "Model registered")
    _mark_done(ctx, project)
    return project


def demo_pricing(ctx: Ctx) -> Project:
    from sklearn.linear_model import LogisticRegression

    project = demo_project_ensure(users=ctx.users, slug="pricing", name="Price elasticity",
                                  description="Estimate which customers accept a price increase.")
    if project.settings.get("demo") == DEMO_VERSION:
        ctx.say("pricing: already loaded")
        return project
    ctx.say("pricing: stuck at prototype (its upload is rejected by validation)")
    rng = np.random.default_rng(29)
    n = 300
    frame = pd.DataFrame({"price_change_pct": rng.normal(5, 2, n), "tenure_months": rng.gamma(2, 12, n),
                          "discount_used": rng.integers(0, 2, n).astype(float)})
    frame["accepted"] = (rng.random(n) < 1 / (1 + np.exp(0.4 * (frame["price_change_pct"] - 5)))).astype(int)
    contract = [{"name": "price_change_pct", "type": "float"}, {"name": "tenure_months", "type": "float"},
                {"name": "discount_used", "type": "float"}, {"name": "competitor_price", "type": "float"}]
    model = _registered_model(ctx, project, "elasticity", contract=contract,
                              description="The notebook model; competitor prices are not available yet.")
    est = LogisticRegression(max_iter=300).fit(frame[["price_change_pct", "tenure_months", "discount_used"]],
                                               frame["accepted"])
    hold = frame.assign(competitor_price=0.0)[[c["name"] for c in contract] + ["accepted"]]
    _upload(ctx, model, est, hold, "accepted", code_ref="notebook:pricing.ipynb", key="pricing-v1")
    _snapshot(ctx, project, "Upload rejected")
    _mark_done(ctx, project)
    return project


def demo_load(*, stdout=None, workers: bool = False) -> dict:
    """Load the demo organisation (idempotent: a loaded project is left as it is)."""
    users = demo_users_ensure()
    now = timezone.now()
    anchor = now.replace(hour=0, minute=0, second=0, microsecond=0)
    ctx = Ctx(users=users, workers=workers, out=stdout, anchor=anchor)
    projects = []
    with _jobs_in_process(not workers):
        for loader in (demo_pricing, demo_support, demo_fraud, demo_churn):
            projects.append(loader(ctx))
    return {"users": users, "projects": projects, "notes": ctx.notes, "seconds": time.monotonic() - ctx.started}


__all__ = ["DEMO_PASSWORD", "DEMO_USERS", "demo_load"]

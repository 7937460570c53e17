"""Training jobs: every write and rule (create, run, cancel). The worker body is ``training_job_run``.

The run, step by step (each step reports progress and a log line; a cancel request stops it at the
next step):

1. read the stored label frame and keep the rows inside the job's time window;
2. build a point-in-time-correct training set through the feature store (``features.services
   .training_set_join`` — the same join as the training-set pages, honouring lag and TTL) and store it
   as a ready ``TrainingSet`` (lineage: the exact source versions read);
3. split it by time (``timesplit.time_split``): train strictly before the split time, holdout after;
4. fit ``sklearn.base.clone`` of the parent version's estimator (``loading.load_estimator``) on train;
5. evaluate the candidate and the parent on the same holdout (``validation.compute_metrics``);
6. final atomic step: register the candidate through ``services.model_version_upload`` (the
   registry's real upload; its worker then validates it) with parent, training set and this job as
   lineage, and link it to the job. Nothing is registered before this step, so a worker killed
   mid-job leaves no version; the upload's idempotency key (``training-<job id>``) makes a
   redelivered task find the version instead of registering a second one.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime

import numpy as np
import polars as pl
from django.conf import settings
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Concat
from django.urls import reverse
from django.utils import timezone

from apps.common.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, PermissionDenied
from apps.common.storage import artifact_store
from apps.projects.models import Job, Project
from apps.projects.permissions import can
from apps.projects.services import audit_record, job_cancel, job_create, job_progress
from apps.registry import timesplit
from apps.registry.models import NATIVE_FORMATS, ModelVersion, RegisteredModel, VersionStatus

from ..models import LabelSource, TrainingJob, TrainingTrigger

log = logging.getLogger(__name__)

MAX_LABEL_ROWS = 5_000_000


def _require(actor, project: Project, action: str) -> None:
    if not can(actor, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")
    if project.is_archived:
        raise Conflict(f"{project.name} is archived")


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInput("Use an ISO 8601 date and time, e.g. 2024-01-31T00:00:00Z", field=field) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _read_labels(labels, filename: str, *, types: dict | None = None, null_values=None) -> pl.DataFrame:
    """A polars/pandas frame as is; an upload or bytes through the portal's one table parser, with the
    feature set's key types and the timestamp declared (``labels_validate`` then conforms frames too) and
    the upload's extra ``null_values`` tokens (parsed already; only the empty cell is null by default)."""
    if isinstance(labels, pl.DataFrame):
        return labels
    if labels is not None and labels.__class__.__name__ == "DataFrame":  # pandas
        return pl.from_pandas(labels)
    if labels is None:
        raise InvalidInput("Choose a label file to upload", field="labels")
    import tempfile
    from pathlib import Path

    from apps.features import tabular

    if isinstance(labels, (bytes, bytearray)):
        chunks = [bytes(labels)]
    elif hasattr(labels, "chunks"):
        chunks = labels.chunks()
    else:
        chunks = iter(lambda: labels.read(1024 * 1024), b"")
    fd, name = tempfile.mkstemp(prefix="slipway-labels-")
    try:
        size = 0
        with open(fd, "wb") as fh:  # streamed to disk with a size limit, never held whole in memory
            for chunk in chunks:
                size += len(chunk)
                if size > settings.UPLOAD_MAX_BYTES:
                    raise PayloadTooLarge(f"The label file is larger than {settings.UPLOAD_MAX_BYTES:,} bytes",
                                       field="labels")
                fh.write(chunk)
        if size == 0:
            raise InvalidInput("The label file is empty", field="labels")
        frame, _fmt = tabular.read_table(name, filename=filename or "labels.csv", types=types,
                                         null_values=null_values)
    except tabular.TableError as exc:
        from apps.features.services import table_error

        raise table_error(exc, field="labels") from exc
    except (InvalidInput, PayloadTooLarge):
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable files are the user's input error
        if hasattr(exc, "message"):
            raise
        raise InvalidInput(f"The label file cannot be read: {str(exc).splitlines()[0][:300]}", field="labels") from exc
    finally:
        Path(name).unlink(missing_ok=True)
    return frame


def _store_frame(frame: pl.DataFrame):
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd")
    return artifact_store().put_bytes(buf.getvalue(), suffix=".parquet")


def _parent(model: RegisteredModel, parent_version) -> ModelVersion:
    if isinstance(parent_version, ModelVersion):
        parent = parent_version
        if parent.model_id != model.pk:
            raise InvalidInput(f"{parent} is not a version of {model.name}", field="parent_version")
    else:
        try:
            number = int(parent_version)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("Choose the version whose estimator is refit", field="parent_version") from exc
        parent = model.versions.filter(version=number).first()
        if parent is None:
            raise InvalidInput(f"{model.name} has no version {number}", field="parent_version")
    if parent.status not in (VersionStatus.READY, VersionStatus.ARCHIVED):
        raise InvalidInput(f"{parent} is {parent.status}: only a validated version can be refit", field="parent_version")
    if parent.artifact_format in NATIVE_FORMATS:
        raise InvalidInput(f"{parent} is a native {parent.artifact_format} model, not a scikit-learn estimator: "
                           "upload it inside a scikit-learn Pipeline (skops) to refit it here", field="parent_version")
    if not parent.safe_artifact_key:
        raise InvalidInput(f"{parent} has no scikit-learn form (uploaded as {parent.artifact_format}), so it "
                           "cannot be cloned and refit", field="parent_version")
    return parent


def training_job_create(*, model: RegisteredModel, actor, parent_version, labels, labels_filename: str = "",
                        label_source: str = LabelSource.FILE, label_source_detail: str = "",
                        timestamp_column: str = "event_timestamp", label_column: str = "", feature_set=None,
                        window_start=None, window_end=None, holdout_split_at=None,
                        holdout_fraction: float | None = 0.2, trigger: str = TrainingTrigger.MANUAL,
                        note: str = "", null_values=None, idempotency_key: str | None = None) -> TrainingJob:
    """Check everything that can be checked now (labels against the feature set, naming the column),
    store the label frame, create the job and queue it on the ``training`` queue after commit.

    ``null_values``: extra null tokens of an uploaded label file (a list, a JSON list or ``NA, null``
    text), parsed as for every tabular upload (``features.services.tabular_null_values``)."""
    from apps.features.services import (
        feature_set_key_problems,
        label_types,
        labels_validate,
        tabular_null_values,
    )

    project = model.project
    _require(actor, project, "training.run")
    if idempotency_key:
        idempotency_key = str(idempotency_key)[:100]
        existing = TrainingJob.objects.filter(idempotency_key=idempotency_key, project=project).first()
        if existing is not None:
            return existing
    if model.is_archived:
        raise Conflict(f"{model.name} is archived")
    if label_source not in LabelSource.values:
        raise InvalidInput(f"The label source must be one of {', '.join(LabelSource.values)}", field="label_source")
    parent = _parent(model, parent_version)
    feature_set = feature_set or model.feature_set
    if feature_set is None:
        raise InvalidInput(f"{model.name} has no feature set: choose the feature set that builds its inputs",
                           field="feature_set")
    if feature_set.project_id != project.pk:
        raise InvalidInput("The feature set belongs to another project", field="feature_set")
    if list(feature_set.output_names) != model.feature_names:
        raise InvalidInput(f"Feature set {feature_set.name} gives {', '.join(feature_set.output_names)} but "
                           f"{model.name} takes {', '.join(model.feature_names)}", field="feature_set")
    problems = feature_set_key_problems(feature_set=feature_set)
    if problems:  # a view that predates declared key types would join the wrong entities
        raise Conflict(problems[0], field="feature_set")
    window_start, window_end = _aware(window_start, "window_start"), _aware(window_end, "window_end")
    if window_start and window_end and window_start >= window_end:
        raise InvalidInput("The time window must end after it starts", field="window_end")
    holdout_split_at = _aware(holdout_split_at, "holdout_split_at")
    if holdout_split_at is None:
        if holdout_fraction is None or not 0.05 <= float(holdout_fraction) <= 0.5:
            raise InvalidInput("Hold out between 5% and 50% of the rows (or give a split time)",
                               field="holdout_fraction")
        holdout_fraction = float(holdout_fraction)
    else:
        holdout_fraction = None
    timestamp_column = (timestamp_column or "").strip() or "event_timestamp"
    nulls = tabular_null_values(null_values)
    frame = _read_labels(labels, labels_filename, null_values=nulls,
                         types=label_types(feature_set=feature_set, timestamp_column=timestamp_column))
    if frame.height > MAX_LABEL_ROWS:
        raise InvalidInput(f"The label file has {frame.height:,} rows (limit {MAX_LABEL_ROWS:,})", field="labels")
    label_column = (label_column or "").strip()
    frame, label_columns = labels_validate(feature_set=feature_set, labels=frame, timestamp_column=timestamp_column,
                                           label_columns=[label_column] if label_column else None)
    if not label_column:
        if len(label_columns) != 1:
            raise InvalidInput(f"The label file has several candidate label columns ({', '.join(label_columns)}): "
                               "name the one to learn", field="label_column")
        label_column = label_columns[0]
    if frame.get_column(label_column).null_count() == frame.height:
        raise InvalidInput(f"The label column {label_column!r} is empty", field="label_column")
    stored = _store_frame(frame)
    with transaction.atomic():
        tj = TrainingJob.objects.create(
            project=project, model=model, parent_version=parent, feature_set=feature_set, label_source=label_source,
            label_source_detail=(label_source_detail or labels_filename or "")[:300], label_artifact_key=stored.key,
            label_sha256=stored.sha256, label_rows=frame.height, timestamp_column=timestamp_column,
            label_column=label_column, window_start=window_start, window_end=window_end,
            holdout_split_at=holdout_split_at, holdout_fraction=holdout_fraction, trigger=trigger,
            note=(note or "")[:300], idempotency_key=idempotency_key or None, requested_by=actor)
        url = reverse("training:training-detail", kwargs={"project": project.slug, "model": model.name, "pk": tj.pk})
        tj.job = job_create(kind="registry.training", actor=actor, project=project,
                            title=f"Train {model.name} from v{parent.version}",
                            params={"training_job_id": tj.pk}, task="workers.training.training_job_run",
                            queue=settings.TRAINING_QUEUE, target_url=url)
        tj.save(update_fields=["job"])
        audit_record(actor=actor, verb="training_job.create", project=project, target=tj,
                     target_label=f"training job #{tj.pk} of {model.name}",
                     details={"parent": str(parent), "feature_set": feature_set.name, "label_source": label_source,
                              "label_rows": frame.height, "label_sha256": stored.sha256, "trigger": trigger,
                              "job": str(tj.job_id), **({"null_values": nulls} if nulls else {})})
    return tj


def training_job_cancel(*, training_job: TrainingJob, actor) -> TrainingJob:
    _require(actor, training_job.project, "training.run")
    if training_job.job is None:
        raise Conflict("This training job has no background job")
    job_cancel(job=training_job.job, actor=actor)
    _log(training_job, f"cancel requested by {actor.username}")
    training_job.refresh_from_db()
    return training_job


def training_jobs_reap(*, now: datetime | None = None) -> dict:
    """Beat: end training jobs whose worker died and whose message the broker will not redeliver.

    A job still ``running`` with no sign of life (log line, progress) for longer than the hard task time
    limit (and the broker's visibility timeout) cannot be alive: Celery would have killed it by then,
    and the broker would have redelivered it. Redis redelivers an unacknowledged
    message after its visibility timeout (the job then restarts, attempt n+1); the embedded file-system
    broker cannot, so such a job would stay "running" forever. It is marked failed with the reason, or
    succeeded when its final step had committed (the version is linked).
    """
    from datetime import timedelta

    from apps.projects.models import JobStatus
    from apps.projects.services import job_fail, job_succeed

    now = now or timezone.now()
    # Give the broker its chance first: Redis redelivers after the visibility timeout.
    redelivery = (settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}).get("visibility_timeout", 0) or 0
    limit = timedelta(seconds=max(settings.CELERY_TASK_TIME_LIMIT, redelivery) + 60)
    reaped = []
    for tj in TrainingJob.objects.select_related("job").filter(job__status=JobStatus.RUNNING):
        last = max(t for t in (tj.updated_at, tj.job.started_at) if t is not None)
        if now - last <= limit:
            continue
        if tj.result_version_id:
            job_succeed(job=tj.job, result={"version_id": tj.result_version_id}, message="Registered")
        else:
            minutes = int((now - last).total_seconds() // 60)
            job_fail(job_id=tj.job_id, error=f"The worker running this job stopped (no sign of life for {minutes} "
                                             "min) and the job was not redelivered; no version was registered. "
                                             "Start the job again.")
            _log(tj, "marked failed: the worker stopped and the job was not redelivered")
        reaped.append(tj.pk)
    return {"reaped": reaped}


# --- the worker body -------------------------------------------------------------------------------


def _log(tj: TrainingJob, message: str) -> None:
    line = f"{timezone.now():%Y-%m-%d %H:%M:%S} {message}\n"
    TrainingJob.objects.filter(pk=tj.pk).update(logs=Concat("logs", Value(line)), updated_at=timezone.now())
    log.info("training job %s: %s", tj.pk, message)


def _step(job: Job, tj: TrainingJob, pct: int, message: str) -> None:
    _log(tj, message)
    job_progress(job=job, progress=pct, message=message)


def _design_matrix(frame: pl.DataFrame, contract: list[dict]):
    """Features in contract order as pandas, coerced exactly as the registry's validation does."""
    from apps.registry.validation import _coerce

    return _coerce(frame.select([c["name"] for c in contract]).to_pandas(), contract)


def _target(series: pl.Series, classes: list | None):
    y = series.to_numpy()
    if classes:
        if all(isinstance(c, bool) for c in classes):
            return np.array([str(v).strip().lower() in ("1", "true", "yes") for v in y], dtype=object)
        if all(isinstance(c, int) for c in classes):
            return y.astype("int64")
        if all(isinstance(c, str) for c in classes):
            return y.astype(str).astype(object)
    return y


def _predict(estimator, X):
    preds = np.asarray(estimator.predict(X))
    proba = np.asarray(estimator.predict_proba(X), dtype="float64") if hasattr(estimator, "predict_proba") else None
    return preds, proba


def _allows_nan(estimator) -> bool:
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # noqa: BLE001 - older estimators without tags: be safe
        return False


def training_job_run(*, job: Job) -> dict:
    from sklearn.base import clone

    from apps.features.services import training_set_join, training_set_report
    from apps.registry.loading import load_estimator
    from apps.registry.validation import compute_metrics

    tj = (TrainingJob.objects.select_related("project", "model", "parent_version", "feature_set", "requested_by",
                                             "result_version").filter(pk=job.params.get("training_job_id")).first())
    if tj is None:
        raise NotFound("The training job no longer exists")
    if tj.result_version_id:  # a redelivered message after the final step committed
        return {"version_id": tj.result_version_id, "version": tj.result_version.version}
    max_attempts = settings.TRAINING_MAX_ATTEMPTS
    if job.attempts > max_attempts:
        raise InvalidInput(f"The worker running this job was lost {job.attempts - 1} times (limit {max_attempts}); "
                           "giving up. Start the job again once the workers are healthy.")
    if job.attempts > 1:
        _log(tj, f"attempt {job.attempts}: the previous worker stopped before finishing; starting over")
    model, parent = tj.model, tj.parent_version
    contract = model.input_contract

    _step(job, tj, 5, f"Reading {tj.label_rows:,} label rows ({tj.get_label_source_display().lower()})")
    labels = pl.read_parquet(artifact_store().path(tj.label_artifact_key))
    ts_col = tj.timestamp_column
    if tj.window_start is not None:
        labels = labels.filter(pl.col(ts_col) >= tj.window_start)
    if tj.window_end is not None:
        labels = labels.filter(pl.col(ts_col) < tj.window_end)
    labels = labels.filter(pl.col(tj.label_column).is_not_null())
    if labels.height == 0:
        raise InvalidInput("No labelled rows fall inside the job's time window")
    _log(tj, f"{labels.height:,} labelled rows inside the time window")

    _step(job, tj, 15, f"Point-in-time join of {labels.height:,} rows to feature set {tj.feature_set.name}")
    result, used_versions = training_set_join(feature_set=tj.feature_set, labels=labels, timestamp_column=ts_col,
                                              leakage=True)
    ts = _training_set_store(tj, labels, result, used_versions, training_set_report)
    frame = result.frame
    _log(tj, f"training set {ts.name}: {frame.height:,} rows, sha256 {ts.sha256[:12]}…, "
             f"{result.rows_without_features:,} rows without any feature value")

    _step(job, tj, 40, "Splitting by time into train and holdout")
    estimator = clone(load_estimator(parent))
    names = [c["name"] for c in contract]
    complete = frame.select(names).null_count().sum_horizontal().item() == 0
    dropped = 0
    if not complete and not _allows_nan(estimator):
        before = frame.height
        frame = frame.drop_nulls(subset=names)
        dropped = before - frame.height
        _log(tj, f"dropped {dropped:,} rows with a missing feature value ({type(estimator).__name__} "
                 "does not accept missing values)")
    try:
        split = timesplit.time_split(frame.get_column(ts_col).to_numpy(), split_at=tj.holdout_split_at,
                                     holdout_fraction=tj.holdout_fraction)
    except timesplit.SplitError as exc:
        raise InvalidInput(f"Cannot split the training set by time: {exc}") from exc
    train, holdout = frame[split.train_index.tolist()], frame[split.holdout_index.tolist()]
    _log(tj, f"train: {split.n_train:,} rows from {split.train_start:%Y-%m-%d %H:%M} to before "
             f"{split.split_time:%Y-%m-%d %H:%M} UTC; holdout: {split.n_holdout:,} rows up to "
             f"{split.holdout_end:%Y-%m-%d %H:%M} UTC")

    _step(job, tj, 50, f"Fitting a fresh clone of {parent}'s {type(estimator).__name__} on {split.n_train:,} rows")
    X_train, X_hold = _design_matrix(train, contract), _design_matrix(holdout, contract)
    y_train = _target(train.get_column(tj.label_column), parent.classes)
    y_hold = _target(holdout.get_column(tj.label_column), parent.classes)
    if parent.classes is not None and len(set(y_train.tolist())) < 2:
        raise InvalidInput("The training rows hold a single class; a classifier needs at least two")
    estimator.fit(X_train, y_train)
    job_progress(job=job, progress=70, message="Evaluating candidate and parent on the same holdout")
    _log(tj, "evaluating candidate and parent on the same holdout")
    parent_est = load_estimator(parent)
    task = model.task
    classes = list(parent.classes) if parent.classes is not None else None
    cand_metrics = compute_metrics(task, y_hold, *_predict(estimator, X_hold), classes)
    par_metrics = compute_metrics(task, y_hold, *_predict(parent_est, X_hold), classes)
    metrics = {"candidate": cand_metrics, "parent": par_metrics, "parent_version": parent.version,
               "n_train": split.n_train, "n_holdout": split.n_holdout, "dropped_rows": dropped,
               "split_time": split.split_time.isoformat(), "train_start": split.train_start.isoformat(),
               "holdout_end": split.holdout_end.isoformat(), "training_set": ts.name}
    TrainingJob.objects.filter(pk=tj.pk).update(metrics=metrics)
    _log(tj, "holdout " + ", ".join(f"{k}: candidate {cand_metrics[k]:.4f} vs parent {par_metrics[k]:.4f}"
                                    for k in cand_metrics if k != "n" and k in par_metrics))

    _step(job, tj, 85, "Registering the new version")
    version = _register(tj, estimator, train, holdout, metrics, ts)
    _log(tj, f"registered {version} (validating in the registry's worker)")
    job_progress(job=job, progress=95, message=f"Registered {version}; the registry validates it")
    url = reverse("registry:version-detail", kwargs={"project": tj.project.slug, "model": model.name,
                                                     "version": version.version})
    Job.objects.filter(pk=job.pk).update(target_url=url)
    return {"version_id": version.pk, "version": version.version, "training_set": ts.name,
            "candidate": cand_metrics, "parent": par_metrics}


def _training_set_store(tj: TrainingJob, labels, result, used_versions, report_fn):
    """The job's training set as a ready ``features.TrainingSet`` (reused on a redelivered run)."""
    from apps.features.models import TrainingSet, TrainingSetStatus

    name = f"training-job-{tj.pk}"
    ts = TrainingSet.objects.filter(project=tj.project, name=name, status=TrainingSetStatus.READY).first()
    if ts is not None:
        return ts
    label_stored = _store_frame(labels)
    stored = _store_frame(result.frame)
    report = report_fn(result=result, feature_names=tj.feature_set.output_names, label_columns=[tj.label_column])
    with transaction.atomic():
        ts, _ = TrainingSet.objects.update_or_create(
            project=tj.project, name=name,
            defaults=dict(description=f"Built by training job #{tj.pk} of {tj.model.name}",
                          feature_set=tj.feature_set, status=TrainingSetStatus.READY, job=tj.job,
                          label_artifact_key=label_stored.key, label_sha256=label_stored.sha256,
                          label_filename=tj.label_source_detail[:255], label_row_count=labels.height,
                          timestamp_column=tj.timestamp_column, label_columns=[tj.label_column],
                          artifact_key=stored.key, sha256=stored.sha256, size=stored.size,
                          row_count=result.frame.height, rows_without_features=result.rows_without_features,
                          built_at=timezone.now(), created_by=tj.requested_by, **report))
        ts.source_versions.set(list(used_versions.values()))
        TrainingJob.objects.filter(pk=tj.pk).update(training_set=ts)
        audit_record(actor=tj.requested_by, verb="feature.trainingset.build", project=tj.project, target=ts,
                     details={"rows": result.frame.height, "sha256": stored.sha256, "training_job": tj.pk,
                              "rows_without_features": result.rows_without_features})
    return ts


def _register(tj: TrainingJob, estimator, train: pl.DataFrame, holdout: pl.DataFrame, metrics: dict,
              ts) -> ModelVersion:
    """The final atomic step: upload through the registry and link the version to the job."""
    import skops.io as sio

    from apps.registry import services

    model, parent = tj.model, tj.parent_version
    names = model.feature_names
    rename = {tj.label_column: "target"} if tj.label_column != "target" else {}

    def parquet(frame: pl.DataFrame) -> io.BytesIO:
        buf = io.BytesIO()
        frame.select([*names, tj.label_column]).rename(rename).write_parquet(buf)
        buf.seek(0)
        return buf

    # The holdout gives the registry's own metrics; the training rows (exactly those the model was fit
    # on) give the reference profile that drift monitoring compares traffic with.
    hold_buf, train_buf = parquet(holdout), parquet(train)
    artifact = io.BytesIO(sio.dumps(estimator))
    card = (f"Retrained by training job #{tj.pk} ({tj.get_trigger_display().lower()}"
            f"{': ' + tj.note if tj.note else ''}).\n\n"
            f"- Parent: v{parent.version} (estimator cloned and refit, same hyperparameters)\n"
            f"- Training set: {ts.name} (sha256 {ts.sha256})\n"
            f"- Labels: {tj.get_label_source_display()} {tj.label_source_detail}\n"
            f"- Train rows: {metrics['n_train']}, holdout rows: {metrics['n_holdout']}, split at "
            f"{metrics['split_time']}\n")
    with transaction.atomic():
        locked = TrainingJob.objects.select_for_update().get(pk=tj.pk)
        if locked.result_version_id:
            return locked.result_version
        version = services.model_version_upload(
            model=model, actor=tj.requested_by, artifact=artifact, filename=f"training-job-{tj.pk}.skops",
            holdout=hold_buf, holdout_filename=f"training-job-{tj.pk}-holdout.parquet", holdout_target="target",
            training_data=train_buf, training_data_filename=f"{ts.name}-train.parquet", training_set=ts, uploader_metrics={k: v for k, v in metrics["candidate"].items() if k != "n"},
            tags=["retrained", f"training-job-{tj.pk}"], model_card=card, code_ref=f"slipway:training-job:{tj.pk}",
            parent_version=parent.version, idempotency_key=f"training-{tj.pk}")
        locked.result_version = version
        locked.save(update_fields=["result_version", "updated_at"])
        audit_record(actor=tj.requested_by, verb="training_job.register", project=tj.project, target=tj,
                     target_label=f"training job #{tj.pk} of {model.name}",
                     details={"version": version.version, "version_id": version.pk, "parent": parent.version,
                              "training_set": ts.name, "candidate": metrics["candidate"],
                              "parent_metrics": metrics["parent"]})
    return version

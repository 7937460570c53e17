"""Training sets: label validation, the point-in-time join, the build job and its report."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.common.errors import Conflict, InvalidInput, NotFound
from apps.common.storage import artifact_store
from apps.projects.models import Job, Project
from apps.projects.services import audit_record, job_create, job_progress

from .. import pit, tabular
from ..models import (
    FeatureSet,
    FeatureView,
    TrainingSet,
    TrainingSetStatus,
)
from .common import (
    _clean_name,
    _read_path,
    _require,
    _spool,
    _store_parquet,
    data_source_frame,
    table_error,
    tabular_null_values,
    upload_is_large,
)
from .feature_views import view_key_problem, view_spec
from .sets import _lookup_plan

# --- training sets ---------------------------------------------------------------------------------


def labels_validate(*, feature_set: FeatureSet, labels: pl.DataFrame, timestamp_column: str,
                    label_columns: list[str] | None = None, field: str = "labels") -> tuple[pl.DataFrame, list[str]]:
    """Check a label frame against a feature set: key and timestamp columns present and non-null,
    timestamps parseable (normalised to UTC), no duplicate (key, timestamp) rows, label columns present
    and not clashing with feature names. Returns (normalised labels, label columns)."""
    plan = _lookup_plan(feature_set)
    needed = [*plan["join_keys"], timestamp_column]
    for col in needed:
        if col not in labels.columns:
            what = "event timestamp" if col == timestamp_column else "entity key"
            raise InvalidInput(f"The label file has no column {col!r} (the {what}); it has: "
                               f"{', '.join(labels.columns[:20])}", field=field)
    try:  # the entities' declared key types decide how the keys are read (no truncation, no re-typing)
        labels = tabular.conform(labels, label_types(feature_set=feature_set, timestamp_column=timestamp_column),
                                 label="the label file", infer=False)
    except (tabular.TableError, pit.PitError) as exc:
        raise table_error(exc, field=field) from exc
    for col in needed:
        n = labels.get_column(col).null_count()
        if n:
            raise InvalidInput(f"Column {col!r} is empty in {n} row(s)", field=field)
    dup = labels.select(needed).is_duplicated()
    if dup.any():
        rows = (dup.arg_true() + 1).head(3).to_list()
        raise InvalidInput(f"The label file has {int(dup.sum())} duplicate rows on ({', '.join(needed)}), "
                           f"e.g. rows {', '.join(map(str, rows))}", field=field)
    if label_columns is None:
        label_columns = [c for c in labels.columns if c not in needed]
    for col in label_columns:
        if col not in labels.columns:
            raise InvalidInput(f"The label file has no label column {col!r}", field=field)
    clash = [c for c in labels.columns if c in plan["order"]]
    if clash:
        raise InvalidInput(f"Label column {clash[0]!r} has the name of a feature of the set; rename it", field=field)
    if not label_columns:
        raise InvalidInput("The label file has no label column besides the key and timestamp", field=field)
    return labels, label_columns


def label_types(*, feature_set: FeatureSet, timestamp_column: str) -> dict[str, str]:
    """Declared types of a label file: each entity key column as its entity declares it, the timestamp."""
    return {**_lookup_plan(feature_set)["key_types"], timestamp_column: "datetime"}


def training_set_build_frame(*, feature_set: FeatureSet, labels, timestamp_column: str,
                             with_event_times: bool = False) -> pl.DataFrame:
    """Point-in-time join of ``labels`` (polars or pandas DataFrame) to ``feature_set``, synchronously.

    Returns a polars DataFrame: every label row in order (timestamp column normalised to UTC), then the
    set's features in set order, named by their output names; null where no value was available at the
    label's time or the value was older than the TTL. ``with_event_times`` adds ``<view>__event_time``
    columns. Reads each view's source at its latest version. Raises InvalidInput on bad labels (missing
    key/timestamp column, unparseable timestamps). ``.to_pandas()`` gives pandas.
    """
    result, _versions = training_set_join(feature_set=feature_set, labels=labels, timestamp_column=timestamp_column,
                                          with_event_times=with_event_times)
    return result.frame


def training_set_join(*, feature_set: FeatureSet, labels, timestamp_column: str, with_event_times: bool = False,
                      leakage: bool = False, source_versions: dict | None = None,
                      with_status: bool = False) -> tuple[pit.PitResult, dict]:
    """The join with its report. Returns (``pit.PitResult``, {source_id: DataSourceVersion used}).

    ``pit.PitResult``: ``.frame`` (polars; label columns, timestamp in UTC, then the set's
    features in order, named by their output names), ``.views`` (matched/expired/missing per view),
    ``.rows_without_features`` and, with ``leakage=True``, ``.leakage`` per feature. Reads each view's
    source at its latest version (or ``source_versions[source_id]``). Raises InvalidInput on bad labels.
    Call ``.frame.to_pandas()`` for pandas.
    """
    plan = _lookup_plan(feature_set)
    try:  # keys read by the entities' declared types (a pandas frame's float keys are not truncated)
        labels = tabular.conform(labels, {k: t for k, t in plan["key_types"].items() if k in labels.columns},
                                 label="the labels", infer=False)
    except tabular.TableError as exc:
        raise table_error(exc, field="labels") from exc
    views = FeatureView.objects.select_related("source", "entity").in_bulk(list(plan["views"]))
    pairs = []
    used_versions = {}
    for vid, info in plan["views"].items():
        view = views[vid]
        version = (source_versions or {}).get(view.source_id) or view.source.latest_version
        if version is None:
            raise InvalidInput(f"Source {view.source.name!r} of view {view.name!r} has no data")
        used_versions[view.source_id] = version
        problem = view_key_problem(view, version)
        if problem:
            raise Conflict(problem, field="feature_set")
        names = dict(info["features"])
        spec = view_spec(view, label_key=info["join_key"], names=names)
        pairs.append((spec, data_source_frame(version=version, columns=spec.columns())))
    try:
        result = pit.point_in_time_join(labels, pairs, timestamp_column=timestamp_column,
                                        with_event_times=with_event_times, leakage=leakage, with_status=with_status)
    except pit.PitError as exc:
        raise InvalidInput(str(exc), field="labels") from exc
    label_cols = list(labels.columns)
    extra = [c for c in result.frame.columns if c not in plan["order"] and c not in label_cols]
    frame = result.frame.select([*label_cols, *plan["order"], *extra])
    result = pit.PitResult(frame=frame, views=result.views, rows_without_features=result.rows_without_features,
                           leakage=result.leakage)
    return result, used_versions


def training_set_request(*, project: Project, actor, name: str, feature_set: FeatureSet, labels_upload,
                         labels_filename: str = "", timestamp_column: str = "event_timestamp",
                         label_columns: list[str] | None = None, description: str = "",
                         null_values=None) -> TrainingSet:
    """Validate the label file now (errors name the column), store it, and queue the build job."""
    _require(actor, project, "trainingset.build")
    name = _clean_name(name)
    if feature_set is None or feature_set.project_id != project.pk:
        raise InvalidInput("Choose a feature set of this project", field="feature_set")
    problems = _lookup_plan(feature_set)["key_problems"]
    if problems:  # a view that predates declared key types would join the wrong entities
        raise Conflict(problems[0], field="feature_set")
    if TrainingSet.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A training set named {name!r} already exists", field="name")
    timestamp_column = (timestamp_column or "").strip()
    if not timestamp_column:
        raise InvalidInput("Name the label file's event timestamp column", field="timestamp_column")
    if labels_upload is None:
        raise InvalidInput("Choose a file to upload", field="labels")
    nulls = tabular_null_values(null_values)
    path = _spool(labels_upload, settings.UPLOAD_MAX_BYTES)
    try:
        if upload_is_large(path):  # a large or wide label file is read and checked by the build job itself
            labels, raw = None, artifact_store().put_file(path, suffix=".upload")
        else:
            labels, _fmt = _read_path(path, labels_filename, field="labels", null_values=nulls,
                                      types=label_types(feature_set=feature_set, timestamp_column=timestamp_column))
            raw = None
    finally:
        path.unlink(missing_ok=True)
    stored = None
    if labels is not None:
        labels, label_columns = labels_validate(feature_set=feature_set, labels=labels,
                                                timestamp_column=timestamp_column, label_columns=label_columns)
        stored = _store_parquet(labels)
    with transaction.atomic():
        try:
            with transaction.atomic():
                ts = TrainingSet.objects.create(
                    project=project, name=name, description=(description or "")[:5000], feature_set=feature_set,
                    label_artifact_key=stored.key if stored else "", label_sha256=stored.sha256 if stored else "",
                    label_filename=(labels_filename or "")[:255], label_row_count=labels.height if stored else 0,
                    timestamp_column=timestamp_column, label_columns=label_columns or [], created_by=actor)
        except IntegrityError as exc:
            raise Conflict(f"A training set named {name!r} already exists", field="name") from exc
        params = {"training_set_id": ts.pk}
        if raw is not None:
            params.update(raw_label_key=raw.key, null_values=nulls, label_columns=label_columns)
        job = job_create(kind="features.training_set", actor=actor, project=project, title=f"Build training set {name}",
                         params=params, task="workers.features.training_set_build_run",
                         target_url=reverse("features:trainingset-detail", args=[project.slug, name]))
        ts.job = job
        ts.save(update_fields=["job"])
        audit_record(actor=actor, verb="feature.trainingset.request", project=project, target=ts,
                     details={"feature_set": feature_set.name, "label_rows": labels.height if stored else None,
                              "label_sha256": stored.sha256 if stored else None, "job": str(job.pk),
                              "read_in_background": raw is not None})
    return ts


def _training_set_labels_from_raw(*, ts: TrainingSet, job: Job) -> None:
    """A large label file, spooled at request time: read it with the one parser, check it like the request
    would have, store it as the set's label Parquet and drop the spooled file."""
    raw = job.params["raw_label_key"]
    if not artifact_store().exists(raw):
        raise NotFound("The uploaded label file of this training set is gone; upload it again")
    try:
        labels, _fmt = _read_path(artifact_store().path(raw), ts.label_filename, field="labels",
                                  null_values=job.params.get("null_values"),
                                  types=label_types(feature_set=ts.feature_set, timestamp_column=ts.timestamp_column))
        labels, label_columns = labels_validate(feature_set=ts.feature_set, labels=labels,
                                                timestamp_column=ts.timestamp_column,
                                                label_columns=job.params.get("label_columns"))
        stored = _store_parquet(labels)
    finally:
        artifact_store().delete(raw)
    TrainingSet.objects.filter(pk=ts.pk).update(label_artifact_key=stored.key, label_sha256=stored.sha256,
                                                label_row_count=labels.height, label_columns=label_columns)
    ts.refresh_from_db()


def training_set_build_run(*, job: Job) -> dict:
    """The Celery job body: join, store Parquet with its hash, compute the report."""
    ts = TrainingSet.objects.select_related("feature_set", "project").filter(pk=job.params.get("training_set_id")).first()
    if ts is None:
        raise NotFound("The training set of this job no longer exists")
    TrainingSet.objects.filter(pk=ts.pk).update(status=TrainingSetStatus.BUILDING, error="")
    try:
        job_progress(job=job, progress=5, message="Reading the label file")
        if job.params.get("raw_label_key") and not ts.label_artifact_key:
            _training_set_labels_from_raw(ts=ts, job=job)
        if not artifact_store().exists(ts.label_artifact_key):
            raise NotFound("The stored label file of this training set is missing; upload it again")
        labels = pl.read_parquet(artifact_store().path(ts.label_artifact_key))
        job_progress(job=job, progress=20, message=f"Point-in-time join of {labels.height:,} label rows")
        result, used_versions = training_set_join(feature_set=ts.feature_set, labels=labels,
                                                  timestamp_column=ts.timestamp_column, leakage=True)
        job_progress(job=job, progress=70, message="Storing the training set as Parquet")
        stored = _store_parquet(result.frame)
        job_progress(job=job, progress=85, message="Computing the report")
        report = training_set_report(result=result, feature_names=ts.feature_set.output_names,
                                     label_columns=ts.label_columns)
    except Exception as exc:
        TrainingSet.objects.filter(pk=ts.pk).update(status=TrainingSetStatus.FAILED,
                                                    error=getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
        raise
    with transaction.atomic():
        TrainingSet.objects.filter(pk=ts.pk).update(
            status=TrainingSetStatus.READY, artifact_key=stored.key, sha256=stored.sha256, size=stored.size,
            row_count=result.frame.height, rows_without_features=result.rows_without_features,
            built_at=timezone.now(), **report)
        ts.source_versions.set(list(used_versions.values()))
        audit_record(actor=ts.created_by, verb="feature.trainingset.build", project=ts.project, target=ts,
                     details={"rows": result.frame.height, "sha256": stored.sha256,
                              "rows_without_features": result.rows_without_features})
    return {"training_set": ts.name, "rows": result.frame.height, "sha256": stored.sha256}


def training_set_report(*, result: pit.PitResult, feature_names: list[str], label_columns: list[str]) -> dict:
    frame = result.frame
    n = max(frame.height, 1)
    null_rates = {c: round(frame.get_column(c).null_count() / n, 6) for c in feature_names if c in frame.columns}
    balance = {}
    for col in label_columns:
        s = frame.get_column(col)
        if s.n_unique() <= 20:
            vc = s.cast(pl.String).fill_null("(null)").value_counts(sort=True)
            balance[col] = {"kind": "classes", "counts": {str(v): int(c) for v, c in vc.iter_rows()}}
        else:
            st = tabular.column_stats(frame.select(col))[col]
            balance[col] = {"kind": "numeric", **{k: st.get(k) for k in ("min", "max", "mean", "std")}}
    stats = tabular.column_stats(frame.select([c for c in feature_names if c in frame.columns]))
    head = frame.head(20)
    preview = {"columns": head.columns,
               "rows": [[("" if v is None else (v.isoformat() if isinstance(v, datetime) else
                          (f"{v:.6g}" if isinstance(v, float) else str(v)))) for v in row] for row in head.iter_rows()]}
    leakage = {"features": result.leakage,
               "views": [{"view": v.view, "matched": v.matched, "expired": v.expired, "missing": v.missing}
                         for v in result.views]}
    return {"null_rates": null_rates, "label_balance": balance, "stats": stats, "preview": preview, "leakage": leakage}


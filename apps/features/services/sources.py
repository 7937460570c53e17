"""Entities and data sources: declaring keys, uploading immutable source versions."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse

from apps.common.errors import Conflict, InvalidInput, NotFound
from apps.common.storage import artifact_store
from apps.projects.models import Project
from apps.projects.services import audit_record, job_create, job_progress

from .. import tabular
from ..models import (
    DataSource,
    DataSourceVersion,
    Entity,
    ValueType,
)
from ..online import online_stale_refresh
from .common import (
    _clean_column,
    _clean_name,
    _read_path,
    _require,
    _spool,
    _store_parquet,
    table_error,
    tabular_null_values,
    tabular_types,
    upload_is_large,
)
from .feature_views import feature_views_rematerialize_for_source

# --- entities ------------------------------------------------------------------------------------


@transaction.atomic
def entity_create(*, project: Project, actor, name: str, join_key: str, value_type: str = ValueType.STRING,
                  description: str = "") -> Entity:
    _require(actor, project, "feature.edit")
    name = _clean_name(name)
    join_key = _clean_column(join_key, field="join_key")
    if value_type not in (ValueType.STRING, ValueType.INT):
        raise InvalidInput("An entity key is a string or an integer", field="value_type")
    if Entity.objects.filter(project=project, name=name).exists():
        raise Conflict(f"An entity named {name!r} already exists", field="name")
    entity = Entity.objects.create(project=project, name=name, join_key=join_key, value_type=value_type,
                                   description=(description or "")[:2000], created_by=actor)
    audit_record(actor=actor, verb="feature.entity.create", project=project, target=entity,
                 details={"join_key": join_key, "value_type": value_type})
    return entity


# --- data sources --------------------------------------------------------------------------------


def data_source_upload(*, project: Project, actor, name: str, upload, filename: str = "", description: str = "",
                       column_types=None, null_values=None) -> DataSourceVersion:
    """Upload a CSV or Parquet file as a new immutable version of source ``name`` (created if new).

    Types are declared once: the first version's column types are ``column_types`` (a dict, JSON or
    ``col:type`` text) where given and the parser's conservative inference elsewhere; every later version
    is read with the previous version's types declared, so a value that does not fit is refused naming the
    column and rows, and a column a feature view reads that is missing is refused naming the column.
    ``null_values``: extra null tokens for this file (only the empty cell is null by default).
    """
    _require(actor, project, "feature.edit")
    name = _clean_name(name)
    if upload is None:
        raise InvalidInput("Choose a file to upload", field="file")
    path = _spool(upload, settings.UPLOAD_MAX_BYTES)
    try:
        return data_source_ingest(project=project, actor=actor, name=name, path=path, filename=filename,
                                  description=description, column_types=column_types, null_values=null_values)
    finally:
        path.unlink(missing_ok=True)


def data_source_upload_request(*, project: Project, actor, name: str, upload, filename: str = "",
                               description: str = "", column_types=None, null_values=None):
    """Upload a source version now, or — past ``FEATURES_UPLOAD_SYNC_MAX_BYTES`` bytes or
    ``FEATURES_UPLOAD_SYNC_MAX_COLUMNS`` columns — as a background job with progress, so the web process
    never holds a request for long. Returns ``(version, None)`` or ``(None, job)``; the job's result names
    the version; a refused file fails the job with the same message and stores nothing."""
    _require(actor, project, "feature.edit")
    name = _clean_name(name)
    if upload is None:
        raise InvalidInput("Choose a file to upload", field="file")
    source = DataSource.objects.filter(project=project, name=name).first()
    data_source_declared_types(source=source, column_types=column_types)  # refuse bad declarations now
    nulls = tabular_null_values(null_values)
    path = _spool(upload, settings.UPLOAD_MAX_BYTES)
    try:
        if not upload_is_large(path):
            version = data_source_ingest(project=project, actor=actor, name=name, path=path, filename=filename,
                                         description=description, column_types=column_types, null_values=nulls)
            return version, None
        stored = artifact_store().put_file(path, suffix=".upload")
    finally:
        path.unlink(missing_ok=True)
    with transaction.atomic():
        job = job_create(kind="features.source_upload", actor=actor, project=project,
                         title=f"Upload {filename or 'a file'} as the next version of {name}",
                         params={"project_id": project.pk, "name": name, "artifact_key": stored.key,
                                 "filename": (filename or "")[:255], "description": (description or "")[:2000],
                                 "column_types": tabular_types(column_types), "null_values": nulls,
                                 "size": stored.size},
                         task="workers.features.data_source_ingest_run",
                         target_url=reverse("features:source-detail", args=[project.slug, name]))
        audit_record(actor=actor, verb="feature.source.upload_request", project=project, target=job,
                     details={"source": name, "size": stored.size, "job": str(job.pk)})
    return None, job


def data_source_ingest_run(*, job) -> dict:
    """The background upload's job body: parse and store the spooled file, then delete it."""
    params = job.params
    project = Project.objects.get(pk=params["project_id"])
    key = params["artifact_key"]
    if not artifact_store().exists(key):
        raise NotFound("The uploaded file of this job is gone; upload it again")
    try:
        version = data_source_ingest(project=project, actor=job.created_by, name=params["name"],
                                     path=artifact_store().path(key), filename=params.get("filename", ""),
                                     description=params.get("description", ""),
                                     column_types=params.get("column_types"), null_values=params.get("null_values"),
                                     job=job)
    finally:
        artifact_store().delete(key)
    return {"source": version.source.name, "version": version.version, "rows": version.row_count,
            "columns": len(version.schema)}


def data_source_declared_types(*, source: DataSource | None, column_types=None) -> dict[str, str]:
    """The types a new version of ``source`` is read with: the latest version's, plus ``column_types`` for
    new columns (a declared column cannot change type: that is refused naming it)."""
    declared = tabular_types(column_types)
    previous = source.latest_version if source else None
    if previous is None:
        return declared
    kept = previous.column_types
    for col, kind in declared.items():
        if col in kept and kept[col] != kind:
            raise InvalidInput(f"Column {col!r} of source {source.name!r} is {kept[col]}; a source keeps its column "
                               f"types across versions (create a new source for a different schema)",
                               field="column_types")
    return {**declared, **kept}


def data_source_ingest(*, project: Project, actor, name: str, path: Path, filename: str = "", description: str = "",
                       column_types=None, null_values=None, job=None) -> DataSourceVersion:
    """Parse the file at ``path`` and store it as the next version of source ``name`` (see ``data_source_upload``;
    background upload jobs call this with ``job`` for progress)."""
    name = _clean_name(name)
    source = DataSource.objects.filter(project=project, name=name).first()
    previous = source.latest_version if source else None
    types = data_source_declared_types(source=source, column_types=column_types)
    if job is not None:
        job_progress(job=job, progress=10, message=f"Reading {filename or 'the file'}")
    df, fmt = _read_path(path, filename, field="file", types=types, null_values=null_values)
    schema = tabular.schema_of(df)
    if previous is not None:
        try:
            tabular.check_schema_compatible(previous.schema, schema)
            needed = set()
            for view in source.views.all():
                needed |= {view.entity_column, view.timestamp_column, *([view.written_at_column] if view.written_at_column else [])}
                needed |= set(view.features.values_list("name", flat=True))
            tabular.require_columns(previous.schema, schema, needed)
        except tabular.TableError as exc:
            raise table_error(exc, field="file") from exc
    if job is not None:
        job_progress(job=job, progress=50, message=f"Describing {df.width:,} columns × {df.height:,} rows")
    stats = tabular.column_stats(df)
    if job is not None:
        job_progress(job=job, progress=75, message="Storing the version as Parquet")
    stored = _store_parquet(df)
    with transaction.atomic():
        if source is None:
            try:
                with transaction.atomic():
                    source = DataSource.objects.create(project=project, name=name, description=(description or "")[:2000],
                                                       created_by=actor)
            except IntegrityError:
                source = DataSource.objects.get(project=project, name=name)
        source = DataSource.objects.select_for_update().get(pk=source.pk)
        number = (source.versions.order_by("-version").values_list("version", flat=True).first() or 0) + 1
        version = DataSourceVersion.objects.create(
            source=source, version=number, artifact_key=stored.key, sha256=stored.sha256, size=stored.size,
            original_filename=(filename or "")[:255], original_format=fmt, row_count=df.height, schema=schema,
            stats=stats, created_by=actor)
        online_stale_refresh(source_ids=[source.pk])  # its views' online values now lag this version
        if description and description != source.description:
            source.description = description[:2000]
        source.save(update_fields=["description", "updated_at"])
        audit_record(actor=actor, verb="feature.source.upload", project=project, target=version,
                     details={"source": name, "version": number, "rows": df.height, "sha256": stored.sha256})
        feature_views_rematerialize_for_source(source=source, actor=actor, reason=f"{source.name} v{number}")
    return version

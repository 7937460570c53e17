"""Entities and data sources: declaring keys, uploading immutable source versions."""

from __future__ import annotations

import polars as pl
from django.db import IntegrityError, transaction

from apps.common.errors import Conflict, InvalidInput
from apps.common.storage import artifact_store
from apps.projects.models import Project
from apps.projects.services import audit_record

from .. import tabular
from ..models import (
    DataSource,
    DataSourceVersion,
    Entity,
    ValueType,
)
from .common import _clean_column, _clean_name, _read_upload, _require, _store_parquet

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



def data_source_upload(*, project: Project, actor, name: str, upload, filename: str = "",
                       description: str = "") -> DataSourceVersion:
    """Upload a CSV or Parquet file as a new immutable version of source ``name`` (created if new).

    The file is validated and typed before anything is stored; a column whose type differs from the
    previous version, or a column a feature view reads that is missing, is refused naming the column.
    """
    _require(actor, project, "feature.edit")
    name = _clean_name(name)
    df, fmt = _read_upload(upload, filename, field="file")
    schema = tabular.schema_of(df)
    source = DataSource.objects.filter(project=project, name=name).first()
    previous = source.latest_version if source else None
    if previous is not None:
        try:
            tabular.check_schema_compatible(previous.schema, schema)
            needed = set()
            for view in source.views.all():
                needed |= {view.entity_column, view.timestamp_column, *([view.written_at_column] if view.written_at_column else [])}
                needed |= set(view.features.values_list("name", flat=True))
            tabular.require_columns(previous.schema, schema, needed)
        except tabular.TableError as exc:
            raise InvalidInput(str(exc), field="file") from exc
    stats = tabular.column_stats(df)
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
        if description and description != source.description:
            source.description = description[:2000]
        source.save(update_fields=["description", "updated_at"])
        audit_record(actor=actor, verb="feature.source.upload", project=project, target=version,
                     details={"source": name, "version": number, "rows": df.height, "sha256": stored.sha256})
    return version


def data_source_frame(*, version: DataSourceVersion) -> pl.DataFrame:
    return pl.read_parquet(artifact_store().path(version.artifact_key))


"""Every write and rule of the feature store, plus the entry points other apps call.

Entry points for other apps (stable):

- ``online_features_get(*, feature_set, entity_keys, as_of=None) -> list[dict]`` — online lookup.
- ``feature_set_online_check(*, feature_set) -> None`` — raises InvalidInput naming batch-only features.
- ``training_set_build_frame(*, feature_set, labels, timestamp_column, ...) -> polars.DataFrame`` — the
  point-in-time join, synchronously, for training jobs and the skew check.
- ``feature_view_freshness(*, view, now=None) -> dict`` — freshness vs SLA (a metric monitoring can alert on).

Writes take the acting user, check ``apps.projects.permissions.can``, write the audit trail and enqueue
background work through ``job_create`` (after commit).
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from apps.common.storage import artifact_store
from apps.projects.models import Job, Project
from apps.projects.permissions import can
from apps.projects.services import audit_record, job_create, job_progress

from . import pit, tabular
from .models import (
    DataSource,
    DataSourceVersion,
    Entity,
    Feature,
    FeatureSet,
    FeatureSetItem,
    FeatureView,
    TrainingSet,
    TrainingSetStatus,
    ValueType,
)
from .online import online_store

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,119}$")


def _require(user, project: Project, action: str) -> None:
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")


def _clean_name(name: str, *, field: str = "name", what: str = "Name") -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise InvalidInput(f"{what} must be 1-80 lowercase letters, digits, '-' or '_' (got {name!r})", field=field)
    return name


def _clean_column(name: str, *, field: str) -> str:
    name = (name or "").strip()
    if not COLUMN_RE.match(name):
        raise InvalidInput(f"{name!r} is not a valid column name (letters, digits, '_')", field=field)
    return name


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


def _spool(upload, max_bytes: int) -> Path:
    """Copy an uploaded file (Django UploadedFile, file object or bytes) to a temp file, refusing oversize."""
    from apps.common.errors import PayloadTooLarge

    fd, name = tempfile.mkstemp(prefix="slipway-upload-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(upload, (bytes, bytearray)):
                chunks = [bytes(upload)]
            elif hasattr(upload, "chunks"):
                chunks = upload.chunks()
            else:
                chunks = iter(lambda: upload.read(1024 * 1024), b"")
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"File is larger than the limit of {max_bytes:,} bytes")
                out.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _read_upload(upload, filename: str, *, field: str) -> tuple[pl.DataFrame, str]:
    if upload is None:
        raise InvalidInput("Choose a file to upload", field=field)
    path = _spool(upload, settings.UPLOAD_MAX_BYTES)
    try:
        return tabular.read_table(path, filename=filename)
    except (tabular.TableError, pit.PitError) as exc:
        raise InvalidInput(str(exc), field=field) from exc
    finally:
        path.unlink(missing_ok=True)


def _store_parquet(df: pl.DataFrame):
    fd, name = tempfile.mkstemp(prefix="slipway-parquet-", suffix=".parquet")
    os.close(fd)
    try:
        df.write_parquet(name, compression="zstd", statistics=True)
        return artifact_store().put_file(Path(name), suffix=".parquet")
    finally:
        Path(name).unlink(missing_ok=True)


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


# --- feature views -------------------------------------------------------------------------------


def _duration(value, *, field: str, allow_none: bool) -> timedelta | None:
    if value in (None, ""):
        if allow_none:
            return None
        raise InvalidInput("Give a duration, e.g. 1h, 30m, 2d or 0", field=field)
    if isinstance(value, timedelta):
        delta = value
    elif isinstance(value, (int, float)):
        delta = timedelta(seconds=value)
    else:
        delta = parse_duration_text(str(value))
        if delta is None:
            raise InvalidInput(f"{value!r} is not a duration: use e.g. 90s, 15m, 1h, 2d, 1w or 0", field=field)
    if delta < timedelta(0):
        raise InvalidInput("A duration cannot be negative", field=field)
    return delta


_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|days|w|week|weeks)?\s*$")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400, "days": 86400,
          "w": 604800, "week": 604800, "weeks": 604800}


def parse_duration_text(text: str) -> timedelta | None:
    """'90s', '15m', '1h', '2d', '1w', '0', '1h30m' or an ISO/Django duration ('1 02:00:00')."""
    from django.utils.dateparse import parse_duration

    text = text.strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    if parts and re.fullmatch(r"(\s*\d+(?:\.\d+)?\s*[a-z]*\s*)+", text):
        total = 0.0
        for number, unit in parts:
            if unit and unit not in _UNITS:
                break
            total += float(number) * _UNITS.get(unit or "s", 1)
        else:
            return timedelta(seconds=total)
    return parse_duration(text)


def format_duration(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    secs = int(delta.total_seconds())
    if secs == 0:
        return "0"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            out.append(f"{secs // size}{unit}")
            secs %= size
    return " ".join(out)


def _view_fields(*, project, entity, source, entity_column, timestamp_column, written_at_column, features,
                 availability_lag, ttl, online, freshness_sla, materialize_every, owner, tags, description) -> dict:
    """Validate a view definition against the source's latest version; returns model field values."""
    if entity is None or entity.project_id != project.pk:
        raise InvalidInput("Choose an entity of this project", field="entity")
    if source is None or source.project_id != project.pk:
        raise InvalidInput("Choose a data source of this project", field="source")
    version = source.latest_version
    if version is None:
        raise InvalidInput(f"Source {source.name!r} has no uploaded file yet", field="source")
    types = version.column_types
    entity_column = (entity_column or entity.join_key).strip()
    if entity_column not in types:
        raise InvalidInput(f"Source {source.name!r} has no column {entity_column!r} for the entity key",
                           field="entity_column")
    if types[entity_column] not in ("string", "int"):
        raise InvalidInput(f"Column {entity_column!r} must hold string or integer keys (it is {types[entity_column]})",
                           field="entity_column")
    for col, fld in ((timestamp_column, "timestamp_column"), (written_at_column, "written_at_column")):
        if fld == "written_at_column" and not col:
            continue
        if col not in types:
            raise InvalidInput(f"Source {source.name!r} has no column {col!r}", field=fld)
        if types[col] != "datetime":
            raise InvalidInput(f"Column {col!r} must hold timestamps (it is {types[col]})", field=fld)
    feats = []
    reserved = {entity_column, timestamp_column, written_at_column}
    for i, f in enumerate(features or []):
        fname = (f.get("name") if isinstance(f, dict) else str(f)).strip()
        if fname not in types:
            raise InvalidInput(f"Source {source.name!r} has no column {fname!r}", field="features")
        if fname in reserved:
            raise InvalidInput(f"Column {fname!r} is the key or a timestamp, not a feature", field="features")
        if any(x["name"] == fname for x in feats):
            raise InvalidInput(f"Feature {fname!r} is listed twice", field="features")
        feats.append({"name": fname, "value_type": types[fname], "position": i,
                      "description": (f.get("description", "") if isinstance(f, dict) else "")[:2000]})
    if not feats:
        raise InvalidInput("Choose at least one feature column", field="features")
    tags = sorted({t.strip().lower()[:40] for t in (tags or []) if t and t.strip()})
    return {
        "entity": entity, "source": source, "entity_column": entity_column, "timestamp_column": timestamp_column,
        "written_at_column": written_at_column or "",
        "availability_lag": _duration(availability_lag, field="availability_lag", allow_none=False),
        "ttl": _duration(ttl, field="ttl", allow_none=True), "online": bool(online),
        "freshness_sla": _duration(freshness_sla, field="freshness_sla", allow_none=True),
        "materialize_every": _duration(materialize_every, field="materialize_every", allow_none=True),
        "owner": owner, "tags": tags, "description": (description or "")[:5000], "_features": feats,
    }


VIEW_ARGS = ("entity", "source", "entity_column", "timestamp_column", "written_at_column", "features",
             "availability_lag", "ttl", "online", "freshness_sla", "materialize_every", "owner", "tags", "description")


@transaction.atomic
def feature_view_create(*, project: Project, actor, name: str, entity, source, timestamp_column: str,
                        features: list, availability_lag="0", entity_column: str = "", written_at_column: str = "",
                        ttl=None, online: bool = False, freshness_sla=None, materialize_every=None, owner=None,
                        tags: list | None = None, description: str = "") -> FeatureView:
    """Declare a feature view (version 1). ``features``: column names or {"name", "description"} dicts."""
    _require(actor, project, "feature.edit")
    name = _clean_name(name)
    if FeatureView.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A feature view named {name!r} already exists: edit it to make a new version", field="name")
    values = _view_fields(project=project, entity=entity, source=source, entity_column=entity_column,
                          timestamp_column=timestamp_column, written_at_column=written_at_column, features=features,
                          availability_lag=availability_lag, ttl=ttl, online=online, freshness_sla=freshness_sla,
                          materialize_every=materialize_every, owner=owner or actor, tags=tags, description=description)
    view = _view_save(project=project, actor=actor, name=name, version=1, values=values)
    audit_record(actor=actor, verb="feature.view.create", project=project, target=view,
                 details=_view_audit(view))
    return view


def _view_save(*, project, actor, name, version, values) -> FeatureView:
    feats = values.pop("_features")
    view = FeatureView.objects.create(project=project, name=name, version=version, created_by=actor, **values)
    Feature.objects.bulk_create([Feature(view=view, **f) for f in feats])
    return view


def _view_audit(view: FeatureView) -> dict:
    return {"version": view.version, "entity": view.entity.name, "source": view.source.name,
            "lag": format_duration(view.availability_lag), "ttl": format_duration(view.ttl), "online": view.online,
            "features": list(view.features.values_list("name", flat=True))}


def feature_view_is_used(*, view: FeatureView) -> bool:
    """Used = referenced by a feature set (and so by its training sets and models)."""
    return FeatureSetItem.objects.filter(feature__view=view).exists()


def feature_view_update(*, view: FeatureView, actor, **changes) -> FeatureView:
    """Edit a view. An unused view changes in place; a used one gets a new version (the old stays as is).

    ``changes`` takes the arguments of ``feature_view_create`` (except name). Returns the current view.
    """
    project = view.project
    _require(actor, project, "feature.edit")
    unknown = set(changes) - set(VIEW_ARGS)
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}")
    with transaction.atomic():
        view = FeatureView.objects.select_for_update().get(pk=view.pk)
        if not view.is_current:
            raise Conflict(f"{view} is not the current version of {view.name}; edit the current one")
        current = {
            "entity": view.entity, "source": view.source, "entity_column": view.entity_column,
            "timestamp_column": view.timestamp_column, "written_at_column": view.written_at_column,
            "features": [{"name": f.name, "description": f.description} for f in view.features.all()],
            "availability_lag": view.availability_lag, "ttl": view.ttl, "online": view.online,
            "freshness_sla": view.freshness_sla, "materialize_every": view.materialize_every, "owner": view.owner,
            "tags": view.tags, "description": view.description,
        }
        merged = {**current, **{k: v for k, v in changes.items()}}
        values = _view_fields(project=project, **merged)
        if feature_view_is_used(view=view):
            FeatureView.objects.filter(pk=view.pk).update(is_current=False)
            new = _view_save(project=project, actor=actor, name=view.name, version=view.version + 1, values=values)
            audit_record(actor=actor, verb="feature.view.version", project=project, target=new,
                         details={**_view_audit(new), "previous_version": view.version})
            return new
        feats = values.pop("_features")
        for k, v in values.items():
            setattr(view, k, v)
        view.save()
        view.features.all().delete()
        Feature.objects.bulk_create([Feature(view=view, **f) for f in feats])
        audit_record(actor=actor, verb="feature.view.update", project=project, target=view, details=_view_audit(view))
        return view


def view_spec(view: FeatureView, *, label_key: str | None = None, names: dict[str, str] | None = None) -> pit.ViewSpec:
    """The pure join's description of ``view`` (``names``: feature → output column; default all features)."""
    feats = list(view.features.all())
    pairs = tuple((f.name, (names or {}).get(f.name, f.name)) for f in feats if names is None or f.name in names)
    return pit.ViewSpec(name=view.name, entity_column=view.entity_column, label_key=label_key or view.entity.join_key,
                        timestamp_column=view.timestamp_column, features=pairs, lag=view.availability_lag,
                        ttl=view.ttl, written_at_column=view.written_at_column or None)


# --- feature sets ---------------------------------------------------------------------------------

REF_RE = re.compile(r"^\s*([a-z0-9][a-z0-9_-]*)(?:@(\d+))?\s*:\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:as\s+([A-Za-z_][A-Za-z0-9_]*))?\s*$")


def _resolve_refs(project: Project, references: list[str]) -> list[tuple[Feature, str]]:
    """Parse ``view:feature``, ``view@2:feature`` or ``view:feature as name`` references."""
    if not references:
        raise InvalidInput("A feature set needs at least one feature", field="features")
    out, names = [], set()
    for ref in references:
        m = REF_RE.match(ref or "")
        if not m:
            raise InvalidInput(f"{ref!r} is not a reference: write view:feature (optionally view@2:feature as name)",
                               field="features")
        vname, ver, fname, alias = m.groups()
        qs = FeatureView.objects.filter(project=project, name=vname)
        view = qs.filter(version=int(ver)).first() if ver else qs.filter(is_current=True).first()
        if view is None:
            raise InvalidInput(f"No feature view {vname!r}{f' version {ver}' if ver else ''}", field="features")
        feature = view.features.filter(name=fname).first()
        if feature is None:
            raise InvalidInput(f"View {vname!r} has no feature {fname!r}", field="features")
        name = alias or fname
        if name in names:
            raise InvalidInput(f"Two features would both be called {name!r}: rename one with "
                               f"'{vname}:{fname} as other_name'", field="features")
        names.add(name)
        out.append((feature, name))
    return out


def _set_items(fs: FeatureSet, resolved) -> None:
    fs.items.all().delete()
    FeatureSetItem.objects.bulk_create([FeatureSetItem(feature_set=fs, feature=f, position=i, output_name=n)
                                        for i, (f, n) in enumerate(resolved)])
    fs.has_batch_only = any(not f.view.online for f, _ in resolved)


@transaction.atomic
def feature_set_create(*, project: Project, actor, name: str, references: list[str], description: str = "") -> FeatureSet:
    _require(actor, project, "feature.edit")
    name = _clean_name(name)
    if FeatureSet.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A feature set named {name!r} already exists", field="name")
    resolved = _resolve_refs(project, references)
    fs = FeatureSet.objects.create(project=project, name=name, description=(description or "")[:5000], created_by=actor)
    _set_items(fs, resolved)
    fs.save(update_fields=["has_batch_only"])
    audit_record(actor=actor, verb="feature.set.create", project=project, target=fs,
                 details={"features": [f"{f.view.name}@{f.view.version}:{f.name} as {n}" for f, n in resolved]})
    return fs


def feature_set_usage(*, feature_set: FeatureSet) -> dict[str, int]:
    """Counts of everything that refers to the set (training sets, and models of the registry)."""
    usage = {}
    for rel in feature_set._meta.related_objects:
        if rel.related_model is FeatureSetItem:
            continue
        accessor = rel.get_accessor_name()
        try:
            n = getattr(feature_set, accessor).count() if rel.one_to_many or rel.many_to_many else 0
        except Exception:  # noqa: BLE001 - a relation we cannot count is not a usage
            n = 0
        if n:
            usage[rel.related_model._meta.verbose_name_plural] = n
    return usage


@transaction.atomic
def feature_set_update(*, feature_set: FeatureSet, actor, references: list[str] | None = None,
                       description: str | None = None) -> FeatureSet:
    """Change an unused set's features (a set used by a training set or a model is the input contract of
    that artifact: create a new set instead)."""
    _require(actor, feature_set.project, "feature.edit")
    fs = FeatureSet.objects.select_for_update().get(pk=feature_set.pk)
    if references is not None:
        usage = feature_set_usage(feature_set=fs)
        if usage:
            used = ", ".join(f"{n} {k}" for k, n in usage.items())
            raise Conflict(f"Feature set {fs.name!r} is used by {used}; create a new feature set instead",
                           field="features")
        _set_items(fs, _resolve_refs(fs.project, references))
        fs.revision += 1
    if description is not None:
        fs.description = description[:5000]
    fs.save()
    audit_record(actor=actor, verb="feature.set.update", project=fs.project, target=fs,
                 details={"features": references} if references is not None else {"description": True})
    return fs


def feature_set_online_check(*, feature_set: FeatureSet) -> None:
    """Raise InvalidInput naming the batch-only feature(s) when the set cannot be served online."""
    batch = feature_set.batch_only_features
    if batch:
        raise InvalidInput(
            f"Feature set {feature_set.name!r} cannot be served online: "
            f"{', '.join(batch)} {'is' if len(batch) == 1 else 'are'} batch-only (the view is not served online)",
            field="feature_set")


# --- online store -----------------------------------------------------------------------------------


def _json_value(v):
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def feature_view_materialize(*, view: FeatureView, as_of: datetime | None = None, job: Job | None = None) -> dict:
    """Write, per entity, the latest value available at ``as_of`` (default now) into the online store.

    Uses ``pit.feature_vector_as_of`` — the offline join's code path. Values older than the TTL are kept
    (with their event time) so the lookup can report them as expired rather than unknown.
    """
    if not view.online:
        raise InvalidInput(f"View {view.name!r} is batch-only: mark it as served online to materialize it")
    version = view.source.latest_version
    if version is None:
        raise InvalidInput(f"Source {view.source.name!r} has no data")
    as_of = as_of or timezone.now()
    if job:
        job_progress(job=job, progress=10, message=f"Reading {version}")
    frame = data_source_frame(version=version)
    spec = view_spec(view)
    vectors = pit.feature_vector_as_of(frame, spec, as_of=as_of, apply_ttl_rule=False)
    if job:
        job_progress(job=job, progress=50, message=f"Writing {vectors.height} entities")
    names = [o for _, o in spec.features]
    rows = []
    for rec in vectors.iter_rows(named=True):
        rows.append({"entity_key": str(rec[spec.entity_column]), "event_time": rec["event_time"],
                     "available_at": rec["available_at"], "values": {n: _json_value(rec[n]) for n in names}})
    materialized_at = timezone.now()
    written = online_store().write(view=view, rows=rows, materialized_at=materialized_at)
    newest = vectors.get_column("event_time").max() if vectors.height else None
    FeatureView.objects.filter(pk=view.pk).update(
        last_materialized_at=materialized_at, materialized_source_version=version, newest_event_time=newest,
        online_row_count=written)
    return {"entities": written, "as_of": as_of.isoformat(), "source_version": version.version,
            "newest_event_time": newest.isoformat() if newest else None}


def feature_view_materialize_request(*, view: FeatureView, actor, idempotency_key: str | None = None) -> Job:
    _require(actor, view.project, "feature.edit")
    if not view.online:
        raise InvalidInput(f"View {view.name!r} is batch-only: only online views are materialized")
    if idempotency_key:
        idempotency_key = f"features.materialize:{view.pk}:{actor.pk}:{idempotency_key[:60]}"
        existing = Job.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    job = job_create(kind="features.materialize", actor=actor, project=view.project, idempotency_key=idempotency_key,
                     title=f"Materialize {view.name} v{view.version}", params={"view_id": view.pk},
                     task="workers.features.feature_view_materialize_run",
                     target_url=reverse("features:view-detail", args=[view.project.slug, view.name]))
    audit_record(actor=actor, verb="feature.view.materialize", project=view.project, target=view,
                 details={"job": str(job.pk)})
    return job


def feature_view_materialize_run(*, job: Job) -> dict:
    view = FeatureView.objects.select_related("source", "entity", "project").filter(pk=job.params.get("view_id")).first()
    if view is None:
        raise NotFound("The view of this job no longer exists")
    return feature_view_materialize(view=view, job=job)


def feature_view_materialize_due(*, now: datetime | None = None) -> list[str]:
    """The beat task: start a materialization job for each current online view whose schedule is due."""
    now = now or timezone.now()
    started = []
    views = FeatureView.objects.filter(online=True, is_current=True, materialize_every__isnull=False)
    for view in views.select_related("project"):
        if view.last_materialized_at and view.last_materialized_at + view.materialize_every > now:
            continue
        if Job.objects.filter(kind="features.materialize", params__view_id=view.pk,
                              status__in=["queued", "running"]).exists():
            continue
        job = job_create(kind="features.materialize", project=view.project,
                         title=f"Scheduled materialization of {view.name} v{view.version}",
                         params={"view_id": view.pk, "scheduled": True},
                         task="workers.features.feature_view_materialize_run")
        started.append(str(job.pk))
    return started


_PLANS: dict[tuple, dict] = {}


def _lookup_plan(feature_set: FeatureSet) -> dict:
    key = (feature_set.pk, feature_set.revision, feature_set.created_at)  # created_at: a reused pk is another set
    plan = _PLANS.get(key)
    if plan is None:
        items = list(feature_set.ordered_items)
        views = {}
        for it in items:
            v = it.feature.view
            views.setdefault(v.pk, {"ttl": v.ttl, "join_key": v.entity.join_key, "online": v.online, "features": []})
            views[v.pk]["features"].append((it.feature.name, it.output_name))
        order = [it.output_name for it in items]
        steps = []
        for vid, v in views.items():
            onames = tuple(o for _, o in v["features"])
            # per view: the dicts every result starts from (copied, never shared between results)
            steps.append((vid, v["join_key"], v["ttl"], tuple(f for f, _ in v["features"]), onames,
                          dict.fromkeys(onames), dict.fromkeys(onames, "ok"), dict.fromkeys(onames, "expired"),
                          dict.fromkeys(onames, "missing")))
        plan = {"views": views, "order": order, "steps": steps,
                "reorder": [o for st in steps for o in st[4]] != order,
                "join_keys": sorted({v["join_key"] for v in views.values()})}
        if len(_PLANS) > 1000:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def online_features_get(*, feature_set: FeatureSet, entity_keys: list, as_of: datetime | None = None) -> list[dict]:
    """Online lookup of a feature set for ``entity_keys``; one result per key, in order.

    ``entity_keys`` items are scalars (when the set's views share one join key) or dicts
    ``{join_key: value}`` (one entry per join key of the set). ``as_of`` (default now) is the time the TTL
    is judged at; the store holds the values available at the view's last materialization (the lookup
    does not travel back in time: use ``training_set_build_frame`` for that). Each result::

        {"entity": {"customer_id": "c1"},
         "values": {"amount_mean_7d": 12.5, "n_tx_24h": None, ...},       # feature set order
         "event_times": {"amount_mean_7d": datetime(UTC) | None, ...},
         "status": {"amount_mean_7d": "ok", "n_tx_24h": "expired", ...}}  # ok | expired | missing

    ``missing``: no value for this entity (unknown key, or nothing available yet at materialization);
    ``expired``: the stored value is older than the view's TTL at ``as_of`` — the value is then None.
    Batch-only features are always ``missing`` (call ``feature_set_online_check`` to refuse them upfront).
    """
    plan = _lookup_plan(feature_set)
    as_of = as_of or datetime.now(UTC)
    join_keys = plan["join_keys"]
    entities = []
    for k in entity_keys:
        if isinstance(k, dict):
            missing = [j for j in join_keys if j not in k]
            if missing:
                raise InvalidInput(f"Entity key is missing {missing[0]!r}", field="entity_keys")
            entities.append({j: k[j] for j in join_keys})
        elif len(join_keys) == 1:
            entities.append({join_keys[0]: k})
        else:
            raise InvalidInput(f"This feature set needs keys {', '.join(join_keys)}: pass objects", field="entity_keys")
    keys = list({str(e[j]) for e in entities for j in join_keys})
    found = online_store().read(list(plan["views"]), keys) if keys else {}
    out = []
    views, order, reorder = plan["steps"], plan["order"], plan["reorder"]
    expired_at: dict = {}  # event time → expired? (values materialized together share their event times)
    if len(views) == 1 and not reorder:  # one view (the common case): build each result's dicts directly
        vid, join_key, ttl, fnames, onames, nones, ok, expired, missing = views[0]
        for ent in entities:
            hit = found.get((vid, str(ent[join_key])))
            if hit is None:
                out.append({"entity": ent, "values": nones.copy(), "event_times": nones.copy(),
                            "status": missing.copy()})
                continue
            stored, event_time = hit
            gone = expired_at.get(event_time)
            if gone is None:
                gone = expired_at[event_time] = pit.ttl_expired(event_time, as_of, ttl)
            out.append({"entity": ent,
                        "values": nones.copy() if gone else dict(zip(onames, map(stored.get, fnames), strict=True)),
                        "event_times": dict.fromkeys(onames, event_time),
                        "status": (expired if gone else ok).copy()})
        return out
    for ent in entities:
        values, times, status = {}, {}, {}
        for vid, join_key, ttl, fnames, onames, nones, ok, expired, missing in views:
            hit = found.get((vid, str(ent[join_key])))
            if hit is None:
                values.update(nones)
                times.update(nones)
                status.update(missing)
                continue
            stored, event_time = hit
            times.update(dict.fromkeys(onames, event_time))
            gone = expired_at.get((event_time, ttl))
            if gone is None:
                gone = expired_at[(event_time, ttl)] = pit.ttl_expired(event_time, as_of, ttl)
            if gone:
                values.update(nones)
                status.update(expired)
            else:
                values.update(zip(onames, map(stored.get, fnames), strict=True))
                status.update(ok)
        if reorder:
            values, times, status = ({n: d[n] for n in order} for d in (values, times, status))
        out.append({"entity": ent, "values": values, "event_times": times, "status": status})
    return out


def feature_view_freshness(*, view: FeatureView, now: datetime | None = None) -> dict:
    """Age of the view's newest value vs its SLA: {"newest", "age_seconds", "sla_seconds", "breached"}.

    Online views: the newest event time in the online store; batch views: in the source's latest version.
    """
    now = now or timezone.now()
    newest = view.newest_event_time
    if not view.online or newest is None:
        version = view.source.latest_version
        st = (version.stats or {}).get(view.timestamp_column, {}) if version else {}
        newest = datetime.fromisoformat(st["max"]) if st.get("max") else None
    age = (now - newest).total_seconds() if newest else None
    sla = view.freshness_sla.total_seconds() if view.freshness_sla else None
    breached = bool(sla is not None and (age is None or age > sla))
    return {"newest": newest, "age_seconds": age, "sla_seconds": sla, "breached": breached}


def feature_set_freshness(*, feature_set: FeatureSet, now: datetime | None = None) -> dict[str, dict]:
    """Freshness of each view a feature set reads: ``{view name: {age_seconds, sla_seconds, breached}}``
    (monitoring stores it in every window, so an alert rule can fire on a breached SLA)."""
    now = now or timezone.now()
    out = {}
    for it in feature_set.ordered_items:
        view = it.feature.view
        if view.name not in out:
            f = feature_view_freshness(view=view, now=now)
            out[view.name] = {"age_seconds": f["age_seconds"], "sla_seconds": f["sla_seconds"],
                              "breached": f["breached"]}
    return out


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
    try:
        labels = pit.normalize_timestamps(labels, [timestamp_column])
    except pit.PitError as exc:
        raise InvalidInput(str(exc), field=field) from exc
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
                      leakage: bool = False, source_versions: dict | None = None) -> tuple[pit.PitResult, dict]:
    """The join with its report. Returns (``pit.PitResult``, {source_id: DataSourceVersion used}).

    ``pit.PitResult``: ``.frame`` (polars; label columns, timestamp in UTC, then the set's
    features in order, named by their output names), ``.views`` (matched/expired/missing per view),
    ``.rows_without_features`` and, with ``leakage=True``, ``.leakage`` per feature. Reads each view's
    source at its latest version (or ``source_versions[source_id]``). Raises InvalidInput on bad labels.
    Call ``.frame.to_pandas()`` for pandas.
    """
    if not isinstance(labels, pl.DataFrame):
        labels = pl.from_pandas(labels)
    plan = _lookup_plan(feature_set)
    views = FeatureView.objects.select_related("source", "entity").in_bulk(list(plan["views"]))
    pairs = []
    used_versions = {}
    for vid, info in plan["views"].items():
        view = views[vid]
        version = (source_versions or {}).get(view.source_id) or view.source.latest_version
        if version is None:
            raise InvalidInput(f"Source {view.source.name!r} of view {view.name!r} has no data")
        used_versions[view.source_id] = version
        names = dict(info["features"])
        pairs.append((view_spec(view, label_key=info["join_key"], names=names), data_source_frame(version=version)))
    try:
        result = pit.point_in_time_join(labels, pairs, timestamp_column=timestamp_column,
                                        with_event_times=with_event_times, leakage=leakage)
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
                         label_columns: list[str] | None = None, description: str = "") -> TrainingSet:
    """Validate the label file now (errors name the column), store it, and queue the build job."""
    _require(actor, project, "trainingset.build")
    name = _clean_name(name)
    if feature_set is None or feature_set.project_id != project.pk:
        raise InvalidInput("Choose a feature set of this project", field="feature_set")
    if TrainingSet.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A training set named {name!r} already exists", field="name")
    timestamp_column = (timestamp_column or "").strip()
    if not timestamp_column:
        raise InvalidInput("Name the label file's event timestamp column", field="timestamp_column")
    labels, _fmt = _read_upload(labels_upload, labels_filename, field="labels")
    labels, label_columns = labels_validate(feature_set=feature_set, labels=labels, timestamp_column=timestamp_column,
                                            label_columns=label_columns)
    stored = _store_parquet(labels)
    with transaction.atomic():
        try:
            with transaction.atomic():
                ts = TrainingSet.objects.create(
                    project=project, name=name, description=(description or "")[:5000], feature_set=feature_set,
                    label_artifact_key=stored.key, label_sha256=stored.sha256, label_filename=(labels_filename or "")[:255],
                    label_row_count=labels.height, timestamp_column=timestamp_column, label_columns=label_columns,
                    created_by=actor)
        except IntegrityError as exc:
            raise Conflict(f"A training set named {name!r} already exists", field="name") from exc
        job = job_create(kind="features.training_set", actor=actor, project=project, title=f"Build training set {name}",
                         params={"training_set_id": ts.pk}, task="workers.features.training_set_build_run",
                         target_url=reverse("features:trainingset-detail", args=[project.slug, name]))
        ts.job = job
        ts.save(update_fields=["job"])
        audit_record(actor=actor, verb="feature.trainingset.request", project=project, target=ts,
                     details={"feature_set": feature_set.name, "label_rows": labels.height,
                              "label_sha256": stored.sha256, "job": str(job.pk)})
    return ts


def training_set_build_run(*, job: Job) -> dict:
    """The Celery job body: join, store Parquet with its hash, compute the report."""
    ts = TrainingSet.objects.select_related("feature_set", "project").filter(pk=job.params.get("training_set_id")).first()
    if ts is None:
        raise NotFound("The training set of this job no longer exists")
    TrainingSet.objects.filter(pk=ts.pk).update(status=TrainingSetStatus.BUILDING, error="")
    try:
        job_progress(job=job, progress=5, message="Reading the label file")
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

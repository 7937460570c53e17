"""Feature views: declaration, validation against the source, versioned edits, the join spec."""

from __future__ import annotations

import re
from datetime import timedelta

from django.db import transaction
from django.db.models import Q

from apps.common.errors import Conflict, InvalidInput
from apps.projects.models import Job, Project
from apps.projects.services import audit_record, job_create

from .. import pit
from ..models import (
    Feature,
    FeatureSetItem,
    FeatureView,
)
from ..online import online_stale_refresh
from .common import _clean_name, _require

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
    if types[entity_column] != entity.value_type:
        hint = (f"; upload the source declaring column_types {{\"{entity_column}\": \"string\"}} to keep keys "
                f"such as '007' as written" if entity.value_type == "string" else "")
        raise InvalidInput(f"Column {entity_column!r} of source {source.name!r} holds {types[entity_column]} values, "
                           f"but entity {entity.name!r} has {entity.value_type} keys{hint}", field="entity_column")
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
            if new.online:  # the new version is served under its own version: fill its store now (visible job)
                job_create(kind="features.materialize", actor=actor, project=project,
                           title=f"Materialize {new} (new version)", params={"view_ids": [new.pk]},
                           task="workers.features.feature_view_materialize_run")
            return new
        feats = values.pop("_features")
        for k, v in values.items():
            setattr(view, k, v)
        view.save()
        view.features.all().delete()
        Feature.objects.bulk_create([Feature(view=view, **f) for f in feats])
        online_stale_refresh(view_ids=[view.pk])  # edited after its materialization: stale
        audit_record(actor=actor, verb="feature.view.update", project=project, target=view, details=_view_audit(view))
        if view.online and view.last_materialized_at:  # its online values follow the old definition: stale
            job_create(kind="features.materialize", actor=actor, project=project,  # until this job has run
                       title=f"Re-materialize {view} (edited)", params={"view_ids": [view.pk]},
                       task="workers.features.feature_view_materialize_run")
        return view


def view_spec(view: FeatureView, *, label_key: str | None = None, names: dict[str, str] | None = None) -> pit.ViewSpec:
    """The pure join's description of ``view`` (``names``: feature → output column; default all features)."""
    feats = list(view.features.all())
    pairs = tuple((f.name, (names or {}).get(f.name, f.name)) for f in feats if names is None or f.name in names)
    return pit.ViewSpec(name=view.name, entity_column=view.entity_column, label_key=label_key or view.entity.join_key,
                        timestamp_column=view.timestamp_column, features=pairs, lag=view.availability_lag,
                        ttl=view.ttl, written_at_column=view.written_at_column or None)


def view_key_problem(view: FeatureView, version=None) -> str:
    """Why ``view`` cannot be joined by its entity's declared key type ('' when it can).

    Views are refused at creation when their key column's type differs from the entity's
    (``_view_fields``); a view created before that rule may read, say, an int-typed column for a string
    entity (its "007" keys stored as 7). Such a view would silently join the wrong entities, so the
    materialization, the training-set join and the online lookup refuse it with this message.
    ``version``: the source version the join reads (default the latest)."""
    version = version or view.source.latest_version
    if version is None:
        return ""
    have, want = version.column_types.get(view.entity_column), view.entity.value_type
    if have is None or have == want:
        return ""
    return (f"View {view} cannot be joined: its key column {view.entity_column!r} holds {have} values in "
            f"{version}, but entity {view.entity.name!r} has {want} keys (the view predates declared key types; "
            f"keys would be matched by another type, e.g. '007' read as 7). Upload the data as a new source "
            f"declaring column_types {view.entity_column}:{want} and edit the view to read it")


def feature_view_versions_in_use(*, view: FeatureView):
    """The online versions of ``view``'s name that must be kept materialized: the current one and every
    version a feature set reads (each is served under its own version)."""
    used = FeatureSetItem.objects.filter(feature__view__project=view.project_id,
                                         feature__view__name=view.name).values("feature__view_id")
    return (FeatureView.objects.filter(project=view.project_id, name=view.name, online=True)
            .filter(Q(is_current=True) | Q(pk__in=used)).select_related("source", "entity", "project")
            .order_by("version"))


def feature_views_rematerialize_for_source(*, source, actor, reason: str = "") -> Job | None:
    """After a new source version: one visible job re-materializing every online view version in use over
    ``source`` (so the online store follows the data the offline join reads). None when there is none."""
    views = []
    for name in sorted(set(FeatureView.objects.filter(source=source, online=True).values_list("name", flat=True))):
        view = FeatureView.objects.filter(project=source.project_id, name=name, is_current=True).first()
        if view is not None:
            views += [v for v in feature_view_versions_in_use(view=view) if v.source_id == source.pk]
    if not views:
        return None
    return job_create(kind="features.materialize", actor=actor, project=source.project,
                      title=f"Re-materialize {', '.join(str(v) for v in views)} after {reason or 'a new version'}",
                      params={"view_ids": [v.pk for v in views], "reason": reason},
                      task="workers.features.feature_view_materialize_run")

"""Reads of the feature store shared by pages, the API and other apps (always within a resolved project)."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Q, QuerySet

from apps.common import rawsql
from apps.common.errors import NotFound, PermissionDenied

from .models import DataSource, Entity, FeatureSet, FeatureSetItem, FeatureView, TrainingSet


def entity_list(*, project) -> QuerySet[Entity]:
    return project.feature_entities.annotate(view_count=Count("views", filter=Q(views__is_current=True)))


def entity_get(*, project, name: str) -> Entity:
    entity = project.feature_entities.filter(name=name).first()
    if entity is None:
        raise NotFound(f"No entity {name!r}", field="entity")
    return entity


def data_source_list(*, project) -> QuerySet[DataSource]:
    return project.feature_sources.annotate(version_count=Count("versions"), last_upload=Max("versions__created_at"))


def data_source_get(*, project, name: str) -> DataSource:
    source = project.feature_sources.filter(name=name).first()
    if source is None:
        raise NotFound(f"No data source {name!r}", field="source")
    return source


def feature_view_list(*, project, search: str = "", entity: str = "", owner: str = "", mode: str = "",
                      tag: str = "", current_only: bool = True) -> QuerySet[FeatureView]:
    """The catalog: current views, filtered by search text (view, feature, description), entity name,
    owner username, mode ("online"/"batch") and tag."""
    qs = project.feature_views.select_related("entity", "source", "owner").prefetch_related("features")
    if current_only:
        qs = qs.filter(is_current=True)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(description__icontains=search)
                       | Q(features__name__icontains=search) | Q(features__description__icontains=search)).distinct()
    if entity:
        qs = qs.filter(entity__name=entity)
    if owner:
        qs = qs.filter(owner__username=owner)
    if mode == "online":
        qs = qs.filter(online=True)
    elif mode == "batch":
        qs = qs.filter(online=False)
    if tag:
        # JSON "contains" is not available on SQLite: filter the (small) list in Python.
        qs = qs.filter(pk__in=[v.pk for v in qs if tag.lower() in (v.tags or [])])
    return qs.order_by("name")


def feature_view_tags(*, project) -> list[str]:
    tags = set()
    for t in project.feature_views.filter(is_current=True).values_list("tags", flat=True):
        tags.update(t or [])
    return sorted(tags)


def feature_view_get(*, project, name: str, version: int | None = None) -> FeatureView:
    qs = project.feature_views.select_related("entity", "source", "owner").filter(name=name)
    view = qs.filter(version=version).first() if version else qs.filter(is_current=True).first()
    if view is None:
        raise NotFound(f"No feature view {name!r}{f' version {version}' if version else ''}")
    return view


def feature_view_usage(*, view: FeatureView) -> dict:
    """Feature sets that reference the view, their training sets, and models (registry) pointing at them."""
    set_ids = FeatureSetItem.objects.filter(feature__view=view).values_list("feature_set_id", flat=True).distinct()
    sets = list(FeatureSet.objects.filter(pk__in=set_ids))
    training_sets = list(TrainingSet.objects.filter(feature_set__in=sets).select_related("feature_set"))
    models = []
    for fs in sets:
        for rel in fs._meta.related_objects:
            if rel.related_model in (FeatureSetItem, TrainingSet) or not rel.one_to_many:
                continue
            try:
                models.extend(getattr(fs, rel.get_accessor_name()).all()[:50])
            except Exception:  # noqa: BLE001 - an app's relation we cannot read is just not listed
                continue
    return {"feature_sets": sets, "training_sets": training_sets, "models": models}


def feature_set_list(*, project) -> QuerySet[FeatureSet]:
    return project.feature_sets.annotate(item_count=Count("items", distinct=True),
                                         training_set_count=Count("training_sets", distinct=True))


def feature_set_get(*, project, name: str) -> FeatureSet:
    fs = project.feature_sets.filter(name=name).first()
    if fs is None:
        raise NotFound(f"No feature set {name!r}")
    return fs


_LOOKUP_SQL: dict[str, tuple] = {}


def _lookup_sql() -> tuple:
    from apps.projects.models import Membership, Project

    hit = _LOOKUP_SQL.get(connection.vendor)
    if hit is None:
        qn = connection.ops.quote_name
        fields, cols = rawsql.columns(FeatureSet, {"id", "project_id", "name", "revision", "created_at"}, "fs")
        sql = (f"SELECT p.{qn('id')}, p.{qn('name')}, m.{qn('role')}, {cols} FROM {rawsql.table(Project)} p "
               f"LEFT JOIN {rawsql.table(Membership)} m ON m.{qn('project_id')} = p.{qn('id')} "
               f"AND m.{qn('user_id')} = %s "
               f"LEFT JOIN {rawsql.table(FeatureSet)} fs ON fs.{qn('project_id')} = p.{qn('id')} AND fs.{qn('name')} = %s "
               f"WHERE p.{qn('slug')} = %s")
        hit = _LOOKUP_SQL[connection.vendor] = (fields, sql)
    return hit


def feature_set_for_lookup(*, user, project_slug: str, name: str, action: str = "feature.view") -> FeatureSet:
    """The online lookup's hot path: project, the user's role and the feature set in ONE query.

    The same rules and answers as ``project_get_for_user`` followed by ``feature_set_get``: not a member
    (and not staff) → 404 for the project; a role without ``action`` → 403; no such set → 404. The set
    comes back with its identity columns loaded (the rest deferred), enough for ``online_features_get``.
    """
    from apps.projects.permissions import can

    fields, sql = _lookup_sql()
    row = rawsql.fetch_one(sql, [user.pk, name, project_slug])
    if row is None or (row[2] is None and not user.is_staff):
        raise NotFound(f"Project {project_slug!r} not found")
    project_id, project_name, role = row[0], row[1], row[2]
    roles = getattr(user, "_slipway_roles", None)
    if roles is None:
        roles = user._slipway_roles = {}
    roles[project_id] = role
    if not can(user, None, action, role=role):
        raise PermissionDenied(f"Your role in {project_name} does not allow {action}")
    if row[3] is None:
        raise NotFound(f"No feature set {name!r}")
    return rawsql.partial(FeatureSet, fields, row[3:])


_ACCESS_CACHE: dict[tuple, tuple] = {}


def feature_set_for_lookup_cached(*, user, project_slug: str, name: str, action: str = "feature.view") -> FeatureSet:
    """``feature_set_for_lookup`` remembered per process for ``API_HOT_PATH_CACHE_TTL`` seconds (only
    successful answers: a refusal is always decided afresh)."""
    ttl = settings.API_HOT_PATH_CACHE_TTL
    if ttl <= 0:
        return feature_set_for_lookup(user=user, project_slug=project_slug, name=name, action=action)
    key = (user.pk, bool(user.is_staff), project_slug, name, action)
    now = time.monotonic()
    hit = _ACCESS_CACHE.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    fs = feature_set_for_lookup(user=user, project_slug=project_slug, name=name, action=action)
    if len(_ACCESS_CACHE) > 10_000:
        _ACCESS_CACHE.clear()
    _ACCESS_CACHE[key] = (now + ttl, fs)
    return fs


def training_set_list(*, project) -> QuerySet[TrainingSet]:
    return project.training_sets.select_related("feature_set", "job", "created_by")


def training_set_get(*, project, name: str) -> TrainingSet:
    ts = project.training_sets.select_related("feature_set", "job", "created_by").filter(name=name).first()
    if ts is None:
        raise NotFound(f"No training set {name!r}")
    return ts


# --- figures (plotly dicts) --------------------------------------------------------------------------


def histogram_figure(name: str, stat: dict) -> dict | None:
    """A bar chart of a column's histogram (numbers) or top values (strings/bools); None if neither."""
    if stat.get("hist"):
        h = stat["hist"]
        edges = h["edges"]
        centers = [(edges[i] + edges[i + 1]) / 2 for i in range(len(h["counts"]))]
        width = (edges[-1] - edges[0]) / max(len(h["counts"]), 1) or 1
        data = [{"type": "bar", "x": centers, "y": h["counts"], "width": [width] * len(centers),
                 "marker": {"color": "#2d6fa8"}, "name": name}]
    elif stat.get("top"):
        data = [{"type": "bar", "x": [str(t["value"]) for t in stat["top"]], "y": [t["count"] for t in stat["top"]],
                 "marker": {"color": "#2d6fa8"}, "name": name}]
    else:
        return None
    return {"data": data, "layout": {"title": {"text": name, "font": {"size": 13}}, "height": 220,
                                     "margin": {"t": 30, "r": 10, "b": 30, "l": 40}, "bargap": 0.05}}


def feature_view_freshness_list(*, project) -> list[dict]:
    """Freshness of every current view of ``project`` vs its SLA — the metric monitoring can alert on:
    [{"view", "version", "online", "newest", "age_seconds", "sla_seconds", "breached"}, ...]."""
    from .services import feature_view_freshness

    return [{"view": v.name, "version": v.version, "online": v.online, **feature_view_freshness(view=v)}
            for v in project.feature_views.filter(is_current=True).select_related("source")]


def training_set_models(*, training_set: TrainingSet) -> list:
    """Objects of other apps (the registry's model versions) that point at this training set: lineage."""
    out = []
    for rel in training_set._meta.related_objects:
        if not rel.one_to_many:
            continue
        try:
            out.extend(getattr(training_set, rel.get_accessor_name()).all()[:50])
        except Exception:  # noqa: BLE001 - an app's relation we cannot read is just not listed
            continue
    return out

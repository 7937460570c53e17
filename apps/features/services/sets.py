"""Feature sets: ordered, named references to view features (the input contract of a model) and the lookup plan."""

from __future__ import annotations

import re

from django.db import transaction

from apps.common.errors import Conflict, InvalidInput
from apps.projects.models import Project
from apps.projects.services import audit_record

from ..models import (
    Feature,
    FeatureSet,
    FeatureSetItem,
    FeatureView,
)
from .common import _clean_name, _require
from .feature_views import view_key_problem

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




_PLANS: dict[tuple, dict] = {}


def lookup_plan_spec(feature_set: FeatureSet) -> dict:
    """What the online lookup of ``feature_set`` needs, as plain JSON (serving keeps it in its state snapshot,
    so a lookup needs no database read of the set): per view its TTL, join key, key type and features, and
    the views' key problems (``view_key_problem``)."""
    items = list(feature_set.ordered_items)
    views: dict[str, dict] = {}
    key_problems = []  # views that predate declared key types (``view_key_problem``): never joined
    for it in items:
        v = it.feature.view
        if str(v.pk) not in views:
            problem = view_key_problem(v)
            if problem:
                key_problems.append(problem)
        views.setdefault(str(v.pk), {"ttl_s": v.ttl.total_seconds() if v.ttl is not None else None,
                                     "join_key": v.entity.join_key, "key_type": v.entity.value_type,
                                     "online": v.online, "features": []})
        views[str(v.pk)]["features"].append([it.feature.name, it.output_name])
    return {"views": views, "order": [it.output_name for it in items], "key_problems": key_problems}


def lookup_plan_from_spec(spec: dict) -> dict:
    """The lookup plan (see ``online_features_with_plan``) built from ``lookup_plan_spec``'s output."""
    from datetime import timedelta

    views = {int(vid): {"ttl": timedelta(seconds=v["ttl_s"]) if v["ttl_s"] is not None else None,
                        "join_key": v["join_key"], "key_type": v["key_type"], "online": v["online"],
                        "features": [tuple(f) for f in v["features"]]}
             for vid, v in spec["views"].items()}
    order = list(spec["order"])
    steps = []
    for vid, v in views.items():
        onames = tuple(o for _, o in v["features"])
        # per view: the dicts every result starts from (copied, never shared between results)
        steps.append((vid, v["join_key"], v["ttl"], tuple(f for f, _ in v["features"]), onames,
                      dict.fromkeys(onames), dict.fromkeys(onames, "ok"), dict.fromkeys(onames, "expired"),
                      dict.fromkeys(onames, "missing"), dict.fromkeys(onames, "stale")))
    return {"views": views, "order": order, "steps": steps,
            "reorder": [o for st in steps for o in st[4]] != order,
            "join_keys": sorted({v["join_key"] for v in views.values()}),
            "key_types": {v["join_key"]: v["key_type"] for v in views.values()},
            "key_problems": list(spec.get("key_problems", []))}


def _lookup_plan(feature_set: FeatureSet) -> dict:
    key = (feature_set.pk, feature_set.revision, feature_set.created_at)  # created_at: a reused pk is another set
    plan = _PLANS.get(key)
    if plan is None:
        plan = lookup_plan_from_spec(lookup_plan_spec(feature_set))
        if len(_PLANS) > 1000:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def feature_set_key_problems(*, feature_set: FeatureSet) -> list[str]:
    """Why the set cannot be joined (``view_key_problem`` of its views: views that predate declared key
    types); empty when it can. Training sets, training jobs and lookups refuse such a set upfront."""
    return list(_lookup_plan(feature_set)["key_problems"])

"""The online store: materialization (the offline join's code path) and the online lookup; freshness."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from apps.common.errors import Conflict, InvalidInput, NotFound
from apps.common.tabular import canonical_key
from apps.projects.models import Job
from apps.projects.services import audit_record, job_create, job_progress

from .. import pit
from ..models import (
    FeatureSet,
    FeatureSetItem,
    FeatureView,
)
from ..online import online_stale_refresh, online_store
from .common import _require, data_source_frame
from .feature_views import feature_view_versions_in_use, view_key_problem, view_spec
from .sets import _lookup_plan

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
    problem = view_key_problem(view, version)
    if problem:
        raise Conflict(problem)
    as_of = as_of or timezone.now()
    if job:
        job_progress(job=job, progress=10, message=f"Reading {version}")
    spec = view_spec(view)
    frame = data_source_frame(version=version, columns=spec.columns())
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
    online_stale_refresh(view_ids=[view.pk])
    return {"entities": written, "as_of": as_of.isoformat(), "source_version": version.version,
            "newest_event_time": newest.isoformat() if newest else None}


def feature_view_materialize_request(*, view: FeatureView, actor, idempotency_key: str | None = None,
                                     version: int | None = None) -> Job:
    """Start one materialization job: of exactly ``version`` of the view when given, else of every version
    in use (``feature_view_versions_in_use``) — feature sets pinned to an older version keep getting that
    version's values from the source's latest data, never a frozen copy."""
    _require(actor, view.project, "feature.edit")
    if version is not None:
        target = FeatureView.objects.filter(project=view.project_id, name=view.name, version=version).first()
        if target is None:
            raise NotFound(f"View {view.name!r} has no version {version}", field="version")
        views = [target]
    else:
        views = list(feature_view_versions_in_use(view=view)) or [view]
    batch = [v for v in views if not v.online]
    if batch:
        raise InvalidInput(f"View {batch[0]} is batch-only: only online views are materialized", field="version")
    for v in views:
        problem = view_key_problem(v)
        if problem:
            raise Conflict(problem)
    if idempotency_key:
        idempotency_key = f"features.materialize:{view.pk}:{version or '*'}:{actor.pk}:{idempotency_key[:60]}"
        existing = Job.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    label = ", ".join(f"v{v.version}" for v in views)
    job = job_create(kind="features.materialize", actor=actor, project=view.project, idempotency_key=idempotency_key,
                     title=f"Materialize {view.name} {label}", params={"view_ids": [v.pk for v in views]},
                     task="workers.features.feature_view_materialize_run",
                     target_url=reverse("features:view-detail", args=[view.project.slug, view.name]))
    audit_record(actor=actor, verb="feature.view.materialize", project=view.project, target=view,
                 details={"job": str(job.pk), "versions": [v.version for v in views]})
    return job


def feature_view_materialize_run(*, job: Job) -> dict:
    ids = job.params.get("view_ids") or [job.params.get("view_id")]
    views = FeatureView.objects.select_related("source", "entity", "project").in_bulk([i for i in ids if i])
    if not views:
        raise NotFound("The view of this job no longer exists")
    out = {}
    for n, pk in enumerate(i for i in ids if i in views):
        view = views[pk]
        if job:
            job_progress(job=job, progress=5 + 90 * n // len(views), message=f"Materializing {view}")
        out[f"v{view.version}"] = feature_view_materialize(view=view, job=job if len(views) == 1 else None)
    return out if len(out) > 1 else next(iter(out.values()))


def feature_view_materialize_due(*, now: datetime | None = None) -> list[str]:
    """The beat task: start a materialization job for each online view version in use (current, or read by
    a feature set) whose schedule is due."""
    now = now or timezone.now()
    started = []
    used = FeatureSetItem.objects.values("feature__view_id")
    views = FeatureView.objects.filter(online=True, materialize_every__isnull=False) \
        .filter(Q(is_current=True) | Q(pk__in=used))
    busy = set()
    for params in Job.objects.filter(kind="features.materialize", status__in=["queued", "running"]) \
            .values_list("params", flat=True):
        busy |= {params.get("view_id"), *(params.get("view_ids") or [])}
    for view in views.select_related("project", "entity", "source"):
        if view.last_materialized_at and view.last_materialized_at + view.materialize_every > now:
            continue
        if view.pk in busy or view_key_problem(view):  # refused (the view page and the lookup say why)
            continue
        job = job_create(kind="features.materialize", project=view.project,
                         title=f"Scheduled materialization of {view.name} v{view.version}",
                         params={"view_ids": [view.pk], "view_id": view.pk, "scheduled": True},
                         task="workers.features.feature_view_materialize_run")
        started.append(str(job.pk))
    return started


def online_features_get(*, feature_set: FeatureSet, entity_keys: list, as_of: datetime | None = None,
                        now: datetime | None = None) -> list[dict]:
    """Feature values of a feature set for ``entity_keys``; one result per key, in order.

    Without ``as_of``: the online store — the values available at each view version's last
    materialization, with the TTL judged at ``now`` (default: the current time).
    With ``as_of``: the values as of that time, answered from the offline store by the training-set join
    itself (``training_set_join``), so the answer equals a training-set row for a label at ``as_of``
    (batch-only features are answered too, as in a training set).

    ``entity_keys`` items are scalars (when the set's views share one join key) or dicts
    ``{join_key: value}`` (one entry per join key of the set); each key is read by its entity's declared
    type (``"007"`` stays ``"007"`` for a string entity; ``1.5`` is refused for an integer entity, 422).
    Each result::

        {"entity": {"customer_id": "c1"},
         "values": {"amount_mean_7d": 12.5, "n_tx_24h": None, ...},       # feature set order
         "event_times": {"amount_mean_7d": datetime(UTC) | None, ...},
         "status": {"amount_mean_7d": "ok", "n_tx_24h": "expired", ...}}  # ok | stale | expired | missing

    ``missing``: no value for this entity (unknown key, or nothing available yet);
    ``expired``: the value is older than the view's TTL — the value is then None. The TTL is inclusive:
    a value exactly TTL old is still ``ok`` (``pit.ttl_expired``, the join's rule);
    ``stale``: the view version's online values lag what the offline join reads (``online.STALE_RULE``: a
    newer source version or an edited definition not materialized yet, or never materialized) — every
    feature of that view is ``stale``; the value is the last materialization's (None when it had none for
    this entity or it is older than the TTL). ``ok`` therefore always equals the offline join at the last
    materialization; re-materializing turns ``stale`` back into ``ok``/``expired``/``missing``.
    Online, batch-only features are always ``missing`` (``feature_set_online_check`` refuses them upfront).
    """
    plan = _lookup_plan(feature_set)
    if plan["key_problems"]:
        raise Conflict(plan["key_problems"][0])
    if as_of is not None:
        entities, canon = _entities(plan, entity_keys)
        return _features_as_of(feature_set=feature_set, plan=plan, entities=entities, canon=canon, as_of=as_of)
    return online_features_with_plan(plan=plan, entity_keys=entity_keys, now=now)


def _entities(plan: dict, entity_keys: list) -> tuple[list[dict], list[dict]]:
    """(entities as given, their keys read by the entity's declared type)."""
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
    key_types = plan["key_types"]
    canon = []  # each entity's keys read by the entity's declared type ("007" stays "007" for a string key)
    for i, ent in enumerate(entities):
        try:
            canon.append({j: canonical_key(ent[j], key_types[j]) for j in join_keys})
        except ValueError as exc:
            raise InvalidInput(f"entity_keys[{i}]: {exc}", field="entity_keys") from exc
    return entities, canon


def online_features_with_plan(*, plan: dict, entity_keys: list, now: datetime | None = None, read=None) -> list[dict]:
    """The online lookup of ``online_features_get`` with a plan in hand (``lookup_plan_from_spec``) and,
    optionally, another reader than the configured store: ``read(view_ids, keys)`` returns
    ``({(view_id, key): (values, event_time)}, stale view ids)`` like ``online_store().read_served``
    (serving passes a read-through copy). The TTL is judged at ``now`` (default: the current time) by the
    same rule."""
    if plan["key_problems"]:
        raise Conflict(plan["key_problems"][0])
    entities, canon = _entities(plan, entity_keys)
    join_keys = plan["join_keys"]
    as_of = now or datetime.now(UTC)
    keys = list({c[j] for c in canon for j in join_keys})
    found, stale = (read or online_store().read_served)(list(plan["views"]), keys) if keys else ({}, set())
    out = []
    views, order, reorder = plan["steps"], plan["order"], plan["reorder"]
    expired_at: dict = {}  # event time → expired? (values materialized together share their event times)
    if len(views) == 1 and not reorder:  # one view (the common case): build each result's dicts directly
        vid, join_key, ttl, fnames, onames, nones, ok, expired, missing, stale_status = views[0]
        if vid in stale:
            ok = expired = missing = stale_status
        for ent, ck in zip(entities, canon, strict=True):
            hit = found.get((vid, ck[join_key]))
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
    for ent, ck in zip(entities, canon, strict=True):
        values, times, status = {}, {}, {}
        for vid, join_key, ttl, fnames, onames, nones, ok, expired, missing, stale_status in views:
            is_stale = vid in stale
            hit = found.get((vid, ck[join_key]))
            if hit is None:
                values.update(nones)
                times.update(nones)
                status.update(stale_status if is_stale else missing)
                continue
            stored, event_time = hit
            times.update(dict.fromkeys(onames, event_time))
            gone = expired_at.get((event_time, ttl))
            if gone is None:
                gone = expired_at[(event_time, ttl)] = pit.ttl_expired(event_time, as_of, ttl)
            if gone:
                values.update(nones)
                status.update(stale_status if is_stale else expired)
            else:
                values.update(zip(onames, map(stored.get, fnames), strict=True))
                status.update(stale_status if is_stale else ok)
        if reorder:
            values, times, status = ({n: d[n] for n in order} for d in (values, times, status))
        out.append({"entity": ent, "values": values, "event_times": times, "status": status})
    return out


def _features_as_of(*, feature_set: FeatureSet, plan: dict, entities: list[dict], canon: list[dict],
                    as_of: datetime) -> list[dict]:
    """The lookup at ``as_of``, answered by the training-set join for one label row per entity."""
    from .training_sets import training_set_join

    as_of = as_of.astimezone(UTC) if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    dtypes = {"int": pl.Int64, "string": pl.String}
    columns = {j: pl.Series(j, [c[j] for c in canon], dtype=pl.String).cast(dtypes.get(plan["key_types"][j], pl.String))
               for j in plan["join_keys"]}
    labels = pl.DataFrame([*columns.values(), pl.Series("__as_of", [as_of] * len(canon), dtype=pit.TS)])
    result, _ = training_set_join(feature_set=feature_set, labels=labels, timestamp_column="__as_of", with_status=True)
    frame = result.frame
    order = plan["order"]
    per_view = []
    for i, info in enumerate(plan["views"].values()):
        per_view.append(([o for _, o in info["features"]], frame.get_column(f"__pit_status_{i}").to_list(),
                         frame.get_column(f"__pit_event_{i}").to_list()))
    values = frame.select(order).to_dicts()
    out = []
    for r, ent in enumerate(entities):
        times, status = {}, {}
        for onames, st, ev in per_view:
            for o in onames:
                status[o] = st[r]
                times[o] = ev[r]
        vals = {o: _json_value(values[r][o]) for o in order}
        out.append({"entity": ent, "values": vals, "event_times": {o: times[o] for o in order},
                    "status": {o: status[o] for o in order}})
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


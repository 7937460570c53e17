"""The online store: materialization (the offline join's code path) and the online lookup; freshness."""

from __future__ import annotations

from datetime import UTC, datetime

from django.urls import reverse
from django.utils import timezone

from apps.common.errors import InvalidInput, NotFound
from apps.projects.models import Job
from apps.projects.services import audit_record, job_create, job_progress

from .. import pit
from ..models import (
    FeatureSet,
    FeatureView,
)
from ..online import online_store
from .common import _require
from .feature_views import view_spec
from .sets import _lookup_plan
from .sources import data_source_frame

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


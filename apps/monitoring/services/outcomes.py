"""Ground truth by prediction request id."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from functools import partial

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.common.errors import InvalidInput, PayloadTooLarge
from apps.common.tasks import task_send
from apps.deployments.models import Deployment, PredictionLog

from .. import outcome_check
from ..models import Outcome, PendingOutcome
from .common import _f, _positive_class, _positive_score, _require, log_watermark

# --- outcomes --------------------------------------------------------------------------------------

MAX_OUTCOMES = 100_000
OUTCOME_KEYS = ("request_id", "label", "observed_at")  # an item holds these only (strict, like every API body)
_CHUNK = 5000


def _parse_outcomes(items) -> list[tuple[uuid.UUID, object, object]]:
    if not isinstance(items, list):
        raise InvalidInput("'outcomes' must be a list of {request_id, label} objects", field="outcomes")
    if len(items) > MAX_OUTCOMES:
        raise PayloadTooLarge(f"At most {MAX_OUTCOMES:,} outcomes per request (got {len(items):,})")
    parsed, errors = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"field": f"outcomes.{i}", "message": "must be an object"})
            continue
        for key in [k for k in item if k not in OUTCOME_KEYS][:5]:
            errors.append({"field": f"outcomes.{i}.{key}", "message": "unknown field"})
        rid, label = item.get("request_id"), item.get("label")
        try:
            rid = uuid.UUID(rid) if isinstance(rid, str) else None
        except ValueError:
            rid = None
        if rid is None:
            errors.append({"field": f"outcomes.{i}.request_id", "message": "must be a UUID string"})
        if isinstance(label, (dict, list)) or label is None:  # a non-finite number is listed per item (invalid)
            errors.append({"field": f"outcomes.{i}.label", "message": "must be a string, number or boolean"})
        if isinstance(item.get("observed_at"), (dict, list)):  # unparseable text is listed per item (invalid)
            errors.append({"field": f"outcomes.{i}.observed_at", "message": "must be an ISO 8601 text"})
        if len(errors) >= 50:
            break
        parsed.append((rid, label, item.get("observed_at")))
    if errors:
        raise InvalidInput(f"{len(errors)} invalid outcome(s); nothing was stored", errors=errors)
    return parsed


def _label_checker(deployment: Deployment):
    """label, version id → the problem (None when the label fits the model version that answered)."""
    task = deployment.registered_model.task
    cache: dict = {}

    def check(label, version_id):
        if version_id not in cache:
            from apps.registry.models import ModelVersion

            cache[version_id] = ModelVersion.objects.filter(pk=version_id).values_list("classes", flat=True).first()
        problem = outcome_check.label_problem(label, task=task, classes=cache[version_id])
        return f"label {problem}" if problem else None

    return check


def _store(deployment: Deployment, by_id: dict, now: datetime, progress=None, observed: dict | None = None) -> dict:
    """Store the outcomes of ``by_id`` (request id → label) whose predictions are in the log; returns the
    counts, conflicts, the ids not (yet) logged, labels the answering model version cannot have produced
    (``invalid``: never stored), label latencies and the span of request times."""
    positive = _positive_class(deployment)
    check = _label_checker(deployment)
    observed = observed or {}
    ids = list(by_id)
    out = {"created": 0, "unchanged": 0, "conflicts": [], "missing": [], "invalid": [], "latencies": [],
           "t_min": None, "t_max": None}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        logs = {r[0]: r for r in PredictionLog.objects.filter(deployment=deployment, request_id__in=chunk)
                .values_list("request_id", "version_id", "created_at", "output", "probabilities")}
        existing = dict(Outcome.objects.filter(request_id__in=chunk).values_list("request_id", "label"))
        new = []
        for rid in chunk:
            label = by_id[rid]
            if rid in existing:
                if json.dumps(existing[rid]) == json.dumps(label):
                    out["unchanged"] += 1
                else:
                    out["conflicts"].append({"request_id": str(rid), "stored": existing[rid], "received": label})
                continue
            row = logs.get(rid)
            if row is None:
                out["missing"].append(rid)
                continue
            problem = check(label, row[1])
            if problem:
                out["invalid"].append((rid, problem))
                continue
            latency = max(0.0, ((observed.get(rid) or now) - row[2]).total_seconds())
            out["latencies"].append(latency)
            out["t_min"] = row[2] if out["t_min"] is None or row[2] < out["t_min"] else out["t_min"]
            out["t_max"] = row[2] if out["t_max"] is None or row[2] > out["t_max"] else out["t_max"]
            new.append(Outcome(deployment=deployment, request_id=rid, version_id=row[1], label=label, output=row[3],
                               score=_positive_score(row[4], positive), predicted_at=row[2], received_at=now,
                               label_latency_s=latency))
        with transaction.atomic():
            out["created"] += len(Outcome.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True))
        if progress is not None:
            progress(min(start + _CHUNK, len(ids)), len(ids))
    if out["created"]:
        transaction.on_commit(partial(_enqueue_performance_refresh, deployment.pk, out["t_min"], out["t_max"]))
    return out


def outcomes_ingest(*, deployment: Deployment, actor, items, now: datetime | None = None, progress=None) -> dict:
    """Store ground truth by request id. Idempotent: a repeat with the same label changes nothing; a
    repeat with another label is reported as a conflict and the stored label is kept. A request id not
    in the prediction log yet — typically still in a serving process's spool — is held as *pending*
    and matched by the monitoring tick when the log catches up (``pending_request_ids``; the API then
    answers 202). Once the log is complete past the time the id was first posted (the unbounded log
    watermark: ``MONITORING_LOG_SETTLE_SECONDS`` and this host's spool) and the id is still not in it,
    no prediction ever had it: a repeat post reports it in ``unknown_request_ids`` (so does one more
    than ``MONITORING_PENDING_OUTCOME_SECONDS`` after the first, whatever the log). Late arrivals are
    accepted whatever their age; the label latency (``observed_at``, else received, − predicted) is
    stored per outcome. Outcomes are checked against the model (apps.monitoring.outcome_check): a label
    the answering version cannot have produced (for a pending id: the production version) or an
    unparseable ``observed_at`` is listed in ``invalid`` and never stored; the others are."""
    _require(actor, deployment, "outcome.post")
    parsed = _parse_outcomes(items)
    now = now or timezone.now()
    by_id: dict[uuid.UUID, object] = {}
    conflicts, duplicates = [], 0
    invalid, observed, index = [], {}, {}
    for i, (rid, _label, observed_raw) in enumerate(parsed):
        when, problem = outcome_check.parse_observed_at(observed_raw, now=now)
        if problem:
            invalid.append({"index": i, "request_id": str(rid), "field": f"outcomes.{i}.observed_at",
                            "message": f"observed_at {problem}"})
            continue
        index.setdefault(rid, i)
        if when is not None:
            observed[rid] = when
    bad_time = {item["index"] for item in invalid}
    for i, (rid, label, _) in enumerate(parsed):
        if i in bad_time:
            continue
        if rid in by_id:
            if json.dumps(by_id[rid]) != json.dumps(label):
                conflicts.append({"request_id": str(rid), "stored": by_id[rid], "received": label})
            else:
                duplicates += 1
            continue
        by_id[rid] = label
    in_batch_conflicts = {c["request_id"] for c in conflicts}
    by_id = {rid: label for rid, label in by_id.items() if str(rid) not in in_batch_conflicts}
    res = _store(deployment, by_id, now, progress, observed)
    check, missing = _label_checker(deployment), {}
    for rid in res["missing"]:  # not logged yet: checked against the production version's classes
        problem = check(by_id[rid], deployment.production_version_id)
        if problem:
            res["invalid"].append((rid, problem))
        else:
            missing[rid] = by_id[rid]
    for rid, problem in res["invalid"]:
        i = index.get(rid, 0)
        invalid.append({"index": i, "request_id": str(rid), "field": f"outcomes.{i}.label", "message": problem})
    pending, unknown = _hold(deployment, missing, now)
    latencies = res["latencies"]
    return {"received": len(parsed), "created": res["created"], "unchanged": res["unchanged"] + duplicates,
            "conflicts": conflicts + res["conflicts"], "pending": len(pending),
            "pending_request_ids": [str(r) for r in pending[:1000]], "unknown_request_ids": [str(r) for r in unknown],
            "invalid": sorted(invalid, key=lambda item: item["index"])[:1000],
            "label_latency_s": {"median": _f(float(np.median(latencies))) if latencies else None,
                                "max": _f(max(latencies)) if latencies else None}}


def _hold(deployment: Deployment, missing: dict, now: datetime) -> tuple[list, list]:
    """Hold not-yet-logged outcomes as pending. An id held since before the log watermark (the log has
    caught up past its first post and it is still not there) is unknown; one held past the hold time is
    dropped as unknown; the others stay pending."""
    if not missing:
        return [], []
    expiry = now - timedelta(seconds=settings.MONITORING_PENDING_OUTCOME_SECONDS)
    caught_up = log_watermark(now, bounded=False)
    held = dict(PendingOutcome.objects.filter(request_id__in=list(missing)).values_list("request_id", "received_at"))
    expired = [rid for rid, at in held.items() if at < expiry]
    if expired:
        PendingOutcome.objects.filter(request_id__in=expired).delete()
    PendingOutcome.objects.bulk_create([PendingOutcome(deployment=deployment, request_id=rid, label=label,
                                                       received_at=now)
                                        for rid, label in missing.items() if rid not in held],
                                       batch_size=2000, ignore_conflicts=True)
    gone = set(expired) | {rid for rid, at in held.items() if at < caught_up}
    return [rid for rid in missing if rid not in gone], sorted(gone, key=str)


def outcomes_pending_match(*, deployment: Deployment, now: datetime | None = None) -> dict:
    """Match pending outcomes whose predictions have reached the log (run by every monitoring tick);
    drop those pending longer than ``MONITORING_PENDING_OUTCOME_SECONDS``. ``unknown``: held ids the
    log has caught up past and still lacks — kept (a repeat post answers them unknown) until the hold
    time, still matched should their row appear after all."""
    now = now or timezone.now()
    expiry = now - timedelta(seconds=settings.MONITORING_PENDING_OUTCOME_SECONDS)
    dropped, _ = PendingOutcome.objects.filter(deployment=deployment, received_at__lt=expiry).delete()
    pending = dict(PendingOutcome.objects.filter(deployment=deployment).values_list("request_id", "label"))
    if not pending:
        return {"matched": 0, "pending": 0, "unknown": 0, "dropped": dropped}
    res = _store(deployment, pending, now)
    missing = set(res["missing"])
    done = [rid for rid in pending if rid not in missing]
    PendingOutcome.objects.filter(request_id__in=done).delete()
    unknown = PendingOutcome.objects.filter(deployment=deployment, request_id__in=list(missing),
                                            received_at__lt=log_watermark(now, bounded=False)).count() if missing else 0
    return {"matched": res["created"], "pending": len(missing) - unknown, "unknown": unknown, "dropped": dropped}


def _enqueue_performance_refresh(deployment_id: int, t_min: datetime, t_max: datetime) -> None:
    task_send("workers.monitoring.performance_refresh", deployment_id, t_min.isoformat(), t_max.isoformat())


def outcomes_ingest_request(*, deployment: Deployment, actor, items) -> object:
    """A post above ``MONITORING_OUTCOMES_SYNC_MAX`` items: validated now (nothing stored when invalid),
    stored as a file and ingested by a worker as a Job with progress (the API answers 202)."""
    from apps.common.storage import artifact_store
    from apps.projects.services import job_create

    _require(actor, deployment, "outcome.post")
    _parse_outcomes(items)
    key = artifact_store().put_bytes(json.dumps(items).encode(), suffix=".outcomes.json").key
    return job_create(kind="monitoring.outcomes_ingest", actor=actor, project=deployment.project,
                      title=f"Outcomes for {deployment.slug} ({len(items):,} items)",
                      params={"deployment_id": deployment.pk, "key": key, "items": len(items)},
                      task="workers.monitoring.outcomes_ingest_run")


def outcomes_ingest_run(*, job) -> dict:
    from apps.common.storage import artifact_store
    from apps.projects.services import job_progress

    deployment = Deployment.objects.select_related("project", "production_version").get(pk=job.params["deployment_id"])
    items = json.loads(artifact_store().read_bytes(job.params["key"]))

    def progress(done: int, total: int) -> None:
        job_progress(job=job, progress=int(95 * done / max(total, 1)), message=f"{done:,} of {total:,} outcomes")

    result = outcomes_ingest(deployment=deployment, actor=job.created_by, items=items, progress=progress)
    artifact_store().delete(job.params["key"])
    return {k: v for k, v in result.items() if k not in ("pending_request_ids",)} | {
        "conflicts": result["conflicts"][:100], "unknown_request_ids": result["unknown_request_ids"][:100],
        "invalid": result["invalid"][:100]}

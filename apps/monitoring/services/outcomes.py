"""Ground truth by prediction request id."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime
from functools import partial

import numpy as np
from django.db import transaction
from django.utils import timezone

from apps.common.errors import InvalidInput, PayloadTooLarge
from apps.common.tasks import task_send
from apps.deployments.models import Deployment, PredictionLog

from ..models import Outcome
from .common import _f, _positive_class, _positive_score, _require

# --- outcomes --------------------------------------------------------------------------------------

MAX_OUTCOMES = 100_000
_CHUNK = 5000


def _parse_outcomes(items) -> list[tuple[uuid.UUID, object]]:
    if not isinstance(items, list):
        raise InvalidInput("'outcomes' must be a list of {request_id, label} objects", field="outcomes")
    if len(items) > MAX_OUTCOMES:
        raise PayloadTooLarge(f"At most {MAX_OUTCOMES:,} outcomes per request (got {len(items):,})")
    parsed, errors = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"field": f"outcomes.{i}", "message": "must be an object"})
            continue
        rid, label = item.get("request_id"), item.get("label")
        try:
            rid = uuid.UUID(rid) if isinstance(rid, str) else None
        except ValueError:
            rid = None
        if rid is None:
            errors.append({"field": f"outcomes.{i}.request_id", "message": "must be a UUID string"})
        if isinstance(label, (dict, list)) or label is None or (isinstance(label, float) and not math.isfinite(label)):
            errors.append({"field": f"outcomes.{i}.label", "message": "must be a string, number or boolean"})
        if len(errors) >= 50:
            break
        parsed.append((rid, label))
    if errors:
        raise InvalidInput(f"{len(errors)} invalid outcome(s); nothing was stored", errors=errors)
    return parsed


def outcomes_ingest(*, deployment: Deployment, actor, items, now: datetime | None = None) -> dict:
    """Store ground truth by request id. Idempotent: a repeat with the same label changes nothing; a
    repeat with another label is reported as a conflict and the stored label is kept; unknown request
    ids (or ids of another deployment) are listed, not fatal. Late arrivals are accepted whatever
    their age; the label latency (received − predicted) is stored per outcome."""
    _require(actor, deployment, "outcome.post")
    parsed = _parse_outcomes(items)
    now = now or timezone.now()
    by_id: dict[uuid.UUID, object] = {}
    conflicts, duplicates = [], 0
    for rid, label in parsed:
        if rid in by_id:
            if json.dumps(by_id[rid]) != json.dumps(label):
                conflicts.append({"request_id": str(rid), "stored": by_id[rid], "received": label})
            else:
                duplicates += 1
            continue
        by_id[rid] = label
    in_batch_conflicts = {c["request_id"] for c in conflicts}
    positive = _positive_class(deployment)
    ids = [rid for rid in by_id if str(rid) not in in_batch_conflicts]
    unknown, created, unchanged = [], 0, 0
    t_min = t_max = None
    latencies = []
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
                    unchanged += 1
                else:
                    conflicts.append({"request_id": str(rid), "stored": existing[rid], "received": label})
                continue
            row = logs.get(rid)
            if row is None:
                unknown.append(str(rid))
                continue
            latency = (now - row[2]).total_seconds()
            latencies.append(latency)
            t_min = row[2] if t_min is None or row[2] < t_min else t_min
            t_max = row[2] if t_max is None or row[2] > t_max else t_max
            new.append(Outcome(deployment=deployment, request_id=rid, version_id=row[1], label=label, output=row[3],
                               score=_positive_score(row[4], positive), predicted_at=row[2], received_at=now,
                               label_latency_s=latency))
        with transaction.atomic():
            created += len(Outcome.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True))
    if created:
        transaction.on_commit(partial(_enqueue_performance_refresh, deployment.pk, t_min, t_max))
    return {"received": len(parsed), "created": created, "unchanged": unchanged + duplicates,
            "conflicts": conflicts, "unknown_request_ids": unknown,
            "label_latency_s": {"median": _f(float(np.median(latencies))) if latencies else None,
                                "max": _f(max(latencies)) if latencies else None}}


def _enqueue_performance_refresh(deployment_id: int, t_min: datetime, t_max: datetime) -> None:
    task_send("workers.monitoring.performance_refresh", deployment_id, t_min.isoformat(), t_max.isoformat())

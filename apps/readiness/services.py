"""Every write of the readiness app: answers and notes, dated snapshots, the CSV export."""

from __future__ import annotations

import csv
import io

from django.db import transaction
from django.utils import timezone

from apps.common.errors import InvalidInput, PermissionDenied
from apps.projects.models import Project
from apps.projects.permissions import can
from apps.projects.services import audit_record, csv_safe

from . import mltestscore, scoring
from .assess import CORE_KEYS, PEOPLE_ITEMS, Assessment, assessment_compute
from .models import ReadinessAnswer, ReadinessSnapshot

NOTE_MAX = 2000


def _require(user, project: Project, action: str) -> None:
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")


def answer_choices(item_key: str) -> tuple:
    if item_key in mltestscore.BY_KEY:
        return scoring.MLTS_ANSWERS
    if item_key in PEOPLE_ITEMS:
        return scoring.PEOPLE_ANSWERS
    return ()


def known_item_keys() -> set[str]:
    return set(mltestscore.BY_KEY) | set(PEOPLE_ITEMS) | set(CORE_KEYS)


def readiness_answer_set(*, project: Project, actor, item_key: str, answer: str = "", note: str = "") -> ReadinessAnswer:
    """Answer an item the portal cannot decide (or add a note to any item). Blank answer and note clear it."""
    _require(actor, project, "readiness.answer")
    if item_key not in known_item_keys():
        raise InvalidInput(f"Unknown readiness item {item_key!r}", field="item_key")
    answer = (answer or "").strip()
    allowed = {k for k, _ in answer_choices(item_key)}
    if answer and answer not in allowed:
        if not allowed:
            raise InvalidInput("The portal decides this item from its records: add a note instead", field="answer")
        raise InvalidInput(f"Answer one of: {', '.join(sorted(allowed))}", field="answer")
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise InvalidInput(f"A note is at most {NOTE_MAX} characters (got {len(note)})", field="note")
    with transaction.atomic():
        obj = ReadinessAnswer.objects.select_for_update().filter(project=project, item_key=item_key).first()
        before = {"answer": obj.answer, "note": obj.note} if obj else None
        if obj is None:
            obj = ReadinessAnswer(project=project, item_key=item_key)
        obj.answer, obj.note, obj.answered_by, obj.answered_at = answer, note, actor, timezone.now()
        obj.save()
        audit_record(actor=actor, verb="readiness.answer", project=project, target=obj, target_label=item_key,
                     details={"item": item_key, "before": before, "after": {"answer": answer, "note": note}})
    return obj


def _snapshot_items(a: Assessment) -> dict:
    return {i.key: {"status": i.status, "figure": i.figure, "value": i.value, "source": i.source}
            for i in a.items + a.mlts_items}


def readiness_snapshot_save(*, project: Project, actor, note: str = "",
                            kind: str = ReadinessSnapshot.Kind.MANUAL, now=None,
                            idempotency_key: str | None = None) -> ReadinessSnapshot:
    """Freeze the live assessment with a date. People need readiness.answer; the daily task passes no actor.
    With an ``idempotency_key`` a repeated call returns the snapshot the first call saved."""
    if actor is not None:
        _require(actor, project, "readiness.answer")
    if idempotency_key:
        if len(idempotency_key) > 120:
            raise InvalidInput("Idempotency-Key is at most 120 characters", field="Idempotency-Key")
        idempotency_key = f"{project.pk}:{idempotency_key}"
        existing = ReadinessSnapshot.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise InvalidInput(f"A note is at most {NOTE_MAX} characters", field="note")
    a = assessment_compute(project=project, now=now)
    with transaction.atomic():
        snap = ReadinessSnapshot.objects.create(
            project=project, kind=kind, taken_at=now or timezone.now(), taken_by=actor, stage=a.stage, score=a.score,
            ml_test_score=a.mlts["final"], lead_time_s=a.lead_time_s, open_alerts=a.open_alerts,
            items=_snapshot_items(a), note=note, idempotency_key=idempotency_key or None)
        audit_record(actor=actor, verb="readiness.snapshot", project=project, target=snap,
                     target_label=f"{snap.taken_at:%Y-%m-%d %H:%M} {a.stage} {a.score}",
                     details={"stage": a.stage, "score": a.score, "ml_test_score": a.mlts["final"], "kind": kind})
    return snap


def readiness_snapshot_daily(*, now=None) -> dict:
    """The beat task: one scheduled snapshot per active project and UTC day (a repeat the same day is a no-op)."""
    now = now or timezone.now()
    taken = 0
    for project in Project.objects.filter(archived_at__isnull=True):
        if ReadinessSnapshot.objects.filter(project=project, kind=ReadinessSnapshot.Kind.SCHEDULED,
                                            taken_at__date=now.date()).exists():
            continue
        readiness_snapshot_save(project=project, actor=None, kind=ReadinessSnapshot.Kind.SCHEDULED, now=now)
        taken += 1
    return {"snapshots": taken}


CSV_COLUMNS = ["project", "slug", "stage", "readiness_score", "ml_test_score", "lead_time_days", "owner",
               "open_alerts", "last_promotion", "pass", "warn", "fail"]


def portfolio_csv(*, rows) -> str:
    """The portfolio table as CSV; every text cell is neutralised against spreadsheet formula injection."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        counts = r.assessment.counts
        writer.writerow([csv_safe(r.project.name), csv_safe(r.project.slug), r.stage, r.score, r.mlts,
                         f"{r.lead_time_s / 86400:.2f}" if r.lead_time_s is not None else "", csv_safe(r.owner),
                         r.open_alerts, r.last_promotion.isoformat() if r.last_promotion else "",
                         counts["pass"], counts["warn"], counts["fail"]])
    return buf.getvalue()

"""Readiness API: a project's live assessment, answers, snapshots; the portfolio."""

from typing import Literal

from django.urls import reverse
from ninja import Query, Router, Status

from apps.common.idempotency import idempotency_key
from apps.common.schemas import IDEMPOTENT, Page, located, paginate
from apps.projects.access import api_permission
from apps.projects.selectors import project_get_for_user

from . import selectors, services
from .assess import assessment_compute
from .schemas import AnswerIn, AnswerOut, AssessmentOut, PortfolioRowOut, SnapshotIn, SnapshotOut

ItemKey = Literal[tuple(sorted(services.known_item_keys()))]  # the items services.readiness_answer_set knows

router = Router(tags=["readiness"])


def _item(i) -> dict:
    return {k: getattr(i, k) for k in ItemKeys}


ItemKeys = ("key", "section", "title", "status", "figure", "detail", "value", "evidence_url", "source", "answerable",
            "answer", "note", "answered_by", "answered_at")


def _snapshot(s) -> dict:
    return {"id": s.pk, "project": s.project.slug, "kind": s.kind, "taken_at": s.taken_at,
            "taken_by": s.taken_by.username if s.taken_by else None, "stage": s.stage, "score": s.score,
            "ml_test_score": s.ml_test_score, "lead_time_s": s.lead_time_s, "open_alerts": s.open_alerts,
            "note": s.note, "items": s.items}


@router.get("/projects/{project}/readiness", response=AssessmentOut)
@api_permission("readiness.view")
def readiness_get(request, project: str):
    """The live assessment: stage, score, every item with its figure and evidence, the ML Test Score."""
    p = project_get_for_user(user=request.auth, slug=project, action="readiness.view")
    a = assessment_compute(project=p)
    return {"project": p.slug, "computed_at": a.computed_at, "stage": a.stage, "score": a.score,
            "lead_time_s": a.lead_time_s, "open_alerts": a.open_alerts, "owners": a.owners, "ml_test_score": a.mlts,
            "items": [_item(i) for i in a.items], "ml_test_score_items": [_item(i) for i in a.mlts_items]}


@router.put("/projects/{project}/readiness/answers/{item_key}", response=AnswerOut)
@api_permission("readiness.answer")
def readiness_answer_put(request, project: str, item_key: ItemKey, payload: AnswerIn):
    """Answer an item people decide (``automated``/``manual``/``no`` for ML Test Score tests, ``yes``/
    ``partly``/``no`` for others) and/or note anything. Idempotent: a repeat sets the same answer."""
    p = project_get_for_user(user=request.auth, slug=project, action="readiness.answer")
    a = services.readiness_answer_set(project=p, actor=request.auth, item_key=item_key, answer=payload.answer,
                                      note=payload.note)
    return {"item_key": a.item_key, "answer": a.answer, "note": a.note,
            "answered_by": a.answered_by.username if a.answered_by else None, "answered_at": a.answered_at}


@router.get("/projects/{project}/readiness/snapshots", response=list[SnapshotOut])
@api_permission("readiness.view")
def readiness_snapshot_list(request, project: str, page: Query[Page]):
    p = project_get_for_user(user=request.auth, slug=project, action="readiness.view")
    return [_snapshot(s) for s in paginate(request, selectors.snapshot_list(project=p), page)]


@router.post("/projects/{project}/readiness/snapshots", response={201: SnapshotOut}, openapi_extra=IDEMPOTENT)
@api_permission("readiness.answer")
def readiness_snapshot_create(request, project: str, payload: SnapshotIn):
    """Save a dated snapshot of the live assessment. Send ``Idempotency-Key`` to make a retry safe."""
    p = project_get_for_user(user=request.auth, slug=project, action="readiness.answer")
    snap = services.readiness_snapshot_save(project=p, actor=request.auth, note=payload.note,
                                            idempotency_key=idempotency_key(request))
    located(request, f"/api/v1/projects/{p.slug}/readiness/snapshots/{snap.pk}")
    return Status(201, _snapshot(snap))


@router.get("/portfolio", response=list[PortfolioRowOut])
@api_permission("authenticated")
def portfolio_list(request, page: Query[Page], search: str = "", stage: str = "", alerts: str = "",
                   min_score: int | None = None, sort: str = "name", descending: bool = False):
    """Every project you can see, assessed live; filter by stage / open alerts / minimum score, sort by any column."""
    rows = selectors.portfolio_rows(user=request.auth, search=search, stage=stage, alerts=alerts, min_score=min_score,
                                    sort=sort, descending=descending)
    return [{"project": r.project.slug, "name": r.project.name, "stage": r.stage, "score": r.score,
             "ml_test_score": r.mlts, "lead_time_s": r.lead_time_s, "owner": r.owner, "open_alerts": r.open_alerts,
             "last_promotion": r.last_promotion, "url": reverse("readiness:assessment", args=[r.project.slug])}
            for r in paginate(request, rows, page)]

"""API of shadow runs and promotion (mounted in portal/api.py). Thin: resolve, call one service, shape."""

from datetime import datetime
from typing import Literal

from ninja import Field, Query, Router, Schema, Status

from apps.common.edge import NON_BLANK_TEXT_PATTERN
from apps.common.errors import NotFound
from apps.common.schemas import InSchema, Page, job_location, located, paginate
from apps.deployments import selectors
from apps.projects.access import api_permission
from apps.projects.schemas import JobAcceptedOut, job_accepted
from apps.projects.selectors import project_get_for_user

from . import selectors as release_selectors
from .models import ShadowRun
from .policy import LIMITS, promotion_policy
from .services import promotion, rollout, shadow
from .shadow_stats import PRIMARY_METRICS

router = Router(tags=["shadow & promotion"])


class ShadowRunIn(InSchema):
    candidate_id: int
    backfill_hours: float = Field(24.0, ge=0, le=24 * 90, description="also score the last hours of traffic")


class ShadowRunOut(Schema):
    id: int
    deployment: str
    candidate_id: int
    candidate: str
    status: str
    since: datetime
    scored: int
    failed: int
    last_error: str
    comparison: dict
    compared_at: datetime | None
    started_at: datetime


class PromotionIn(InSchema):
    candidate_id: int
    justification: str = Field(..., json_schema_extra={"pattern": NON_BLANK_TEXT_PATTERN})


class ReviewIn(InSchema):
    decision: Literal["approve", "reject"]
    comment: str = Field(..., json_schema_extra={"pattern": NON_BLANK_TEXT_PATTERN})
    evidence_hash: str
    artifact_sha256: str
    override_reason: str = ""


class ReviewOut(Schema):
    id: int
    reviewer: str
    decision: str
    comment: str
    override_reason: str
    failing_gates: list
    evidence_hash: str
    artifact_sha256: str
    counts: bool
    created_at: datetime


class PromotionOut(Schema):
    id: int
    project: str
    deployment: str
    candidate_id: int
    candidate: str
    production_version_id: int
    status: str
    justification: str
    requested_by: str
    artifact_sha256: str
    evidence_hash: str
    evidence_at: datetime
    gates_passed: bool
    approvals_required: int
    approvals_counting: int
    evidence: dict
    reviews: list[ReviewOut]
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None


class RollbackIn(InSchema):
    reason: str = ""


_M = "(?:(?:" + "|".join(PRIMARY_METRICS) + r")\s*)"
_METRIC_LIST = rf"^\s*{_M}?(?:,\s*{_M}?)*$"  # what promotion._clean_metrics accepts: known names, commas, blanks


def _limit(key: str):
    """A policy setting's range (policy.LIMITS, which the service enforces) in the schema."""
    return Field(None, ge=LIMITS[key][0], le=LIMITS[key][1])


class PromotionPolicyIn(InSchema):
    approvals_required: int | None = _limit("approvals_required")
    min_shadow_requests: int | None = _limit("min_shadow_requests")
    tolerance: float | None = _limit("tolerance")
    min_labelled: int | None = _limit("min_labelled")
    alpha: float | None = _limit("alpha")
    first_version_owner_override: bool | None = None
    primary_metrics: str | None = Field(None, json_schema_extra={"pattern": _METRIC_LIST})  # comma-separated: accuracy, roc_auc, log_loss, rmse, mae ("" = task default)
    metric_margin: float | None = _limit("metric_margin")


class PromotionPolicyOut(Schema):
    approvals_required: int
    min_shadow_requests: int
    tolerance: float
    min_labelled: int
    alpha: float
    first_version_owner_override: bool


class CanaryIn(InSchema):
    candidate_id: int
    percent: float = Field(..., gt=0, le=50, description="share of live requests (more than 0, at most 50)")
    sticky_by: Literal["request", "entity"] = "request"


class CanaryOut(Schema):
    deployment: str
    candidate_id: int
    percent: float
    sticky_by: str
    paused: bool = False


class RollbackOut(Schema):
    deployment: str
    production_version_id: int
    production_version: str


def _dep(request, project: str, deployment: str, action: str):
    proj = project_get_for_user(user=request.auth, slug=project, action=action)
    return selectors.deployment_get_for_user(user=request.auth, project=proj, slug=deployment, action=action)


def _version(dep, version_id: int):
    version = selectors.deployable_versions(project=dep.project).filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"No ready model version {version_id} in {dep.project.name}", field="candidate_id")
    return version


def _run(request, project: str, run_id: int, action: str) -> ShadowRun:
    proj = project_get_for_user(user=request.auth, slug=project, action=action)
    run = ShadowRun.objects.select_related("deployment__project", "candidate__model").filter(
        pk=run_id, deployment__project=proj).first()
    if run is None:
        raise NotFound(f"No shadow run {run_id} in {proj.name}")
    return run


def _run_out(run: ShadowRun) -> dict:
    return {"id": run.pk, "deployment": run.deployment.slug, "candidate_id": run.candidate_id,
            "candidate": str(run.candidate), "status": run.status, "since": run.since, "scored": run.scored,
            "failed": run.failed, "last_error": run.last_error, "comparison": run.comparison or {},
            "compared_at": run.compared_at, "started_at": run.started_at}


def _req_out(req) -> dict:
    counting = set(promotion.counting_approvals(req).values_list("pk", flat=True))
    return {"id": req.pk, "project": req.project.slug, "deployment": req.deployment.slug,
            "candidate_id": req.candidate_id, "candidate": str(req.candidate),
            "production_version_id": req.production_version_id, "status": req.status,
            "justification": req.justification, "requested_by": req.requested_by.username,
            "artifact_sha256": req.artifact_sha256, "evidence_hash": req.evidence_hash, "evidence_at": req.evidence_at,
            "gates_passed": req.gates_passed, "approvals_required": req.approvals_required,
            "approvals_counting": len(counting), "evidence": req.evidence, "created_at": req.created_at,
            "decided_at": req.decided_at, "decided_by": req.decided_by.username if req.decided_by else None,
            "reviews": [{"id": r.pk, "reviewer": r.reviewer.username, "decision": r.decision, "comment": r.comment,
                         "override_reason": r.override_reason, "failing_gates": r.failing_gates,
                         "evidence_hash": r.evidence_hash, "artifact_sha256": r.artifact_sha256,
                         "counts": r.pk in counting, "created_at": r.created_at}
                        for r in req.reviews.select_related("reviewer")]}


def _req(request, project: str, pk: int, action: str):
    proj = project_get_for_user(user=request.auth, slug=project, action=action)
    return release_selectors.promotion_request_get(project=proj, pk=pk)


# --- shadow runs ---------------------------------------------------------------------------------


@router.get("/projects/{project}/deployments/{deployment}/shadow-runs", response=list[ShadowRunOut])
@api_permission("deployment.view")
def shadow_run_list(request, project: str, deployment: str, page: Query[Page]):
    dep = _dep(request, project, deployment, "deployment.view")
    return [_run_out(r) for r in paginate(request, dep.shadow_runs.select_related("deployment", "candidate__model"),
                                          page)]


@router.post("/projects/{project}/deployments/{deployment}/shadow-runs", response={201: ShadowRunOut})
@api_permission("shadow.manage")
def shadow_run_start(request, project: str, deployment: str, payload: ShadowRunIn):
    dep = _dep(request, project, deployment, "shadow.manage")
    run = shadow.shadow_run_start(deployment=dep, actor=request.auth, candidate=_version(dep, payload.candidate_id),
                                  backfill_hours=payload.backfill_hours)
    located(request, f"/api/v1/projects/{dep.project.slug}/shadow-runs/{run.pk}")
    return Status(201, _run_out(run))


@router.get("/projects/{project}/shadow-runs/{run_id}", response=ShadowRunOut)
@api_permission("deployment.view")
def shadow_run_get(request, project: str, run_id: int):
    return _run_out(_run(request, project, run_id, "deployment.view"))


@router.post("/projects/{project}/shadow-runs/{run_id}/stop", response=ShadowRunOut)
@api_permission("shadow.manage")
def shadow_run_stop(request, project: str, run_id: int):
    return _run_out(shadow.shadow_run_stop(run=_run(request, project, run_id, "shadow.manage"), actor=request.auth))


@router.post("/projects/{project}/shadow-runs/{run_id}/resume", response=ShadowRunOut)
@api_permission("shadow.manage")
def shadow_run_resume(request, project: str, run_id: int):
    """Resume a shadow run an emergency rollback paused (409 when it is not paused)."""
    return _run_out(shadow.shadow_run_resume(run=_run(request, project, run_id, "shadow.manage"), actor=request.auth))


@router.post("/projects/{project}/shadow-runs/{run_id}/score", response={202: JobAcceptedOut})
@api_permission("shadow.manage")
def shadow_run_score(request, project: str, run_id: int):
    job = shadow.shadow_run_score_request(run=_run(request, project, run_id, "shadow.manage"), actor=request.auth)
    job_location(request, job.pk)
    return Status(202, job_accepted(job))


# --- promotion requests --------------------------------------------------------------------------


@router.get("/projects/{project}/promotions", response=list[PromotionOut])
@api_permission("deployment.view")
def promotion_list(request, project: str, page: Query[Page], status: str = ""):
    proj = project_get_for_user(user=request.auth, slug=project, action="deployment.view")
    qs = release_selectors.promotion_request_list(project=proj, status=status)
    return [_req_out(r) for r in paginate(request, qs, page)]


@router.get("/promotions/inbox", response=list[PromotionOut])
@api_permission("authenticated")
def promotion_inbox(request, page: Query[Page]):
    return [_req_out(r) for r in paginate(request, release_selectors.promotion_inbox_for_user(user=request.auth), page)]


@router.post("/projects/{project}/deployments/{deployment}/promotions", response={201: PromotionOut})
@api_permission("promotion.request")
def promotion_open(request, project: str, deployment: str, payload: PromotionIn):
    dep = _dep(request, project, deployment, "promotion.request")
    req = promotion.promotion_request_open(deployment=dep, actor=request.auth,
                                           candidate=_version(dep, payload.candidate_id),
                                           justification=payload.justification)
    located(request, f"/api/v1/projects/{dep.project.slug}/promotions/{req.pk}")
    return Status(201, _req_out(req))


@router.get("/projects/{project}/promotions/{pk}", response=PromotionOut)
@api_permission("deployment.view")
def promotion_get(request, project: str, pk: int):
    return _req_out(_req(request, project, pk, "deployment.view"))


@router.post("/projects/{project}/promotions/{pk}/refresh", response=PromotionOut)
@api_permission("promotion.request")
def promotion_refresh(request, project: str, pk: int):
    req = promotion.promotion_request_refresh(request=_req(request, project, pk, "promotion.request"),
                                              actor=request.auth)
    return _req_out(req)


@router.post("/projects/{project}/promotions/{pk}/withdraw", response=PromotionOut)
@api_permission("deployment.view")
def promotion_withdraw(request, project: str, pk: int):
    req = promotion.promotion_request_withdraw(request=_req(request, project, pk, "deployment.view"),
                                               actor=request.auth)
    return _req_out(req)


@router.post("/projects/{project}/promotions/{pk}/reviews", response={201: PromotionOut})
@api_permission("promotion.review")
def promotion_review(request, project: str, pk: int, payload: ReviewIn):
    req = _req(request, project, pk, "promotion.review")
    promotion.promotion_request_review(request=req, reviewer=request.auth, **payload.dict())
    located(request, f"/api/v1/projects/{req.project.slug}/promotions/{pk}")
    return Status(201, _req_out(release_selectors.promotion_request_get(project=req.project, pk=pk)))


@router.post("/projects/{project}/deployments/{deployment}/rollback", response=RollbackOut)
@api_permission("deployment.view")
def deployment_rollback(request, project: str, deployment: str, payload: RollbackIn):
    dep = _dep(request, project, deployment, "deployment.view")
    dep = rollout.deployment_rollback(deployment=dep, actor=request.auth, reason=payload.reason)
    return {"deployment": dep.slug, "production_version_id": dep.production_version_id,
            "production_version": str(dep.production_version)}


@router.get("/projects/{project}/promotion-policy", response=PromotionPolicyOut)
@api_permission("deployment.view")
def policy_get(request, project: str):
    return promotion_policy(project_get_for_user(user=request.auth, slug=project, action="deployment.view")).to_dict()


@router.put("/projects/{project}/promotion-policy", response=PromotionPolicyOut)
@api_permission("project.edit")
def policy_put(request, project: str, payload: PromotionPolicyIn):
    proj = project_get_for_user(user=request.auth, slug=project, action="project.edit")
    values = {k: v for k, v in payload.dict().items() if v is not None}
    return promotion.promotion_policy_update(project=proj, actor=request.auth, values=values).to_dict()


@router.put("/projects/{project}/deployments/{deployment}/canary", response=CanaryOut)
@api_permission("deployment.manage")
def canary_put(request, project: str, deployment: str, payload: CanaryIn):
    dep = _dep(request, project, deployment, "deployment.manage")
    c = rollout.canary_set(deployment=dep, actor=request.auth, candidate=_version(dep, payload.candidate_id),
                             percent=payload.percent, sticky_by=payload.sticky_by)
    return {"deployment": dep.slug, "candidate_id": c.candidate_id, "percent": c.percent, "sticky_by": c.sticky_by}


@router.post("/projects/{project}/deployments/{deployment}/canary/resume", response=CanaryOut)
@api_permission("deployment.manage")
def canary_resume(request, project: str, deployment: str):
    """Resume a canary an emergency rollback paused (409 when there is none)."""
    dep = _dep(request, project, deployment, "deployment.manage")
    c = rollout.canary_resume(deployment=dep, actor=request.auth)
    return {"deployment": dep.slug, "candidate_id": c.candidate_id, "percent": c.percent, "sticky_by": c.sticky_by,
            "paused": False}


@router.delete("/projects/{project}/deployments/{deployment}/canary", response={204: None})
@api_permission("deployment.manage")
def canary_delete(request, project: str, deployment: str):
    rollout.canary_stop(deployment=_dep(request, project, deployment, "deployment.manage"), actor=request.auth)
    return Status(204, None)

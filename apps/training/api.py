"""Training API: training jobs (/api/v1/projects/{project}/models/{model}/training-jobs[/{id}[/cancel]])
and retraining policies (/api/v1/deployments/{deployment}/retraining-policy[/retrain|/firings])."""

from datetime import datetime
from typing import Annotated

from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status
from pydantic import WithJsonSchema

from apps.common.errors import InvalidInput, NotFound
from apps.common.idempotency import idempotency_key
from apps.common.schemas import IDEMPOTENT, InSchema, Page, located, paginate
from apps.deployments.selectors import deployment_get_by_slug
from apps.monitoring.services.common import METRIC_PATTERN
from apps.projects.access import api_permission
from apps.projects.selectors import project_get_for_user
from apps.registry import selectors as registry_selectors

from . import selectors
from .forms import TrainingJobForm
from .models import PolicyFiring, RetrainingPolicy, TrainingJob
from .services import jobs
from .services import retraining as retraining_services
from .services.retraining import MAX_TRIGGERS, POLICY_LIMITS

router = Router(tags=["training"])
P = "/projects/{project}/models/{model}/training-jobs"


class TrainingJobOut(Schema):
    id: int
    model: str
    parent_version: int
    feature_set: str
    label_source: str
    label_source_detail: str
    label_rows: int
    label_column: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    holdout_split_at: datetime | None = None
    holdout_fraction: float | None = None
    status: str
    progress: int
    message: str
    error: str
    attempts: int
    job_id: str | None = None
    result_version: int | None = None
    result_version_status: str | None = None
    training_set: str | None = None
    metrics: dict
    logs: str
    trigger: str
    note: str
    requested_by: str | None = None
    created_at: datetime
    url: str


def _out(tj: TrainingJob) -> dict:
    job = tj.job
    return {
        "id": tj.pk, "model": tj.model.name, "parent_version": tj.parent_version.version,
        "feature_set": tj.feature_set.name, "label_source": tj.label_source,
        "label_source_detail": tj.label_source_detail, "label_rows": tj.label_rows, "label_column": tj.label_column,
        "window_start": tj.window_start, "window_end": tj.window_end, "holdout_split_at": tj.holdout_split_at,
        "holdout_fraction": tj.holdout_fraction, "status": tj.status, "progress": job.progress if job else 0,
        "message": job.message if job else "", "error": job.error if job else "",
        "attempts": job.attempts if job else 0, "job_id": str(tj.job_id) if tj.job_id else None,
        "result_version": tj.result_version.version if tj.result_version_id else None,
        "result_version_status": tj.result_version.status if tj.result_version_id else None,
        "training_set": tj.training_set.name if tj.training_set_id else None, "metrics": tj.metrics,
        "logs": tj.logs, "trigger": tj.trigger, "note": tj.note,
        "requested_by": tj.requested_by.username if tj.requested_by else None, "created_at": tj.created_at,
        "url": reverse("training:training-detail", kwargs={"project": tj.project.slug, "model": tj.model.name,
                                                            "pk": tj.pk}),
    }


def _qs():
    return TrainingJob.objects.select_related("project", "model", "parent_version", "feature_set", "job",
                                              "result_version", "training_set", "requested_by")


def _model(request, project: str, model: str, action: str):
    p = project_get_for_user(user=request.auth, slug=project, action=action)
    return registry_selectors.registered_model_get(project=p, name=model)


def _get(request, project: str, model: str, pk: int, action: str) -> TrainingJob:
    m = _model(request, project, model, action)
    tj = _qs().filter(pk=pk, model=m).first()
    if tj is None:
        raise NotFound(f"{m.name} has no training job {pk}")
    return tj


@router.get(P, response=list[TrainingJobOut])
@api_permission("model.view")
def list_training_jobs(request, project: str, model: str, page: Query[Page], status: str = ""):
    m = _model(request, project, model, "model.view")
    qs = _qs().filter(model=m)
    if status:
        qs = qs.filter(job__status=status)
    return [_out(tj) for tj in paginate(request, qs, page)]


_CREATE_DOC = {
    "requestBody": {"content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["parent_version", "labels"],
        "properties": {
            "parent_version": {"type": "integer", "minimum": 1, "description": "version whose estimator is cloned and refit"},
            "labels": {"type": "string", "format": "binary", "description": "CSV/Parquet: entity key, time, label"},
            "timestamp_column": {"type": "string", "default": "event_timestamp"},
            "label_column": {"type": "string"},
            "null_values": {"type": "string", "description": "extra null tokens of the label file: a JSON list or "
                            "comma-separated text (NA, null); only the empty cell by default"},
            "window_start": {"type": "string", "format": "date-time"},
            "window_end": {"type": "string", "format": "date-time"},
            "holdout_fraction": {"type": "number", "default": 0.2},
            "holdout_split_at": {"type": "string", "format": "date-time"},
            "note": {"type": "string"},
        }}}}},
}


@router.post(P, response={202: TrainingJobOut}, openapi_extra={**_CREATE_DOC, **IDEMPOTENT})
@api_permission("training.run")
def create_training_job(request, project: str, model: str):
    """Start a training job (multipart). 202: it runs on the training queue; poll it. Send an
    ``Idempotency-Key`` header to make retries safe."""
    m = _model(request, project, model, "training.run")
    versions = m.versions.all()
    form = TrainingJobForm(request.POST, request.FILES, versions=versions)
    if not form.is_valid():
        errors = [{"field": f, "message": str(msg)} for f, msgs in form.errors.items() for msg in msgs]
        raise InvalidInput(f"Invalid input: {errors[0]['field']}: {errors[0]['message']}", errors=errors)
    d = form.cleaned_data
    tj = jobs.training_job_create(
        model=m, actor=request.auth, parent_version=d["parent_version"], labels=d["labels"],
        labels_filename=d["labels"].name, timestamp_column=d["timestamp_column"], label_column=d["label_column"],
        window_start=d["window_start"], window_end=d["window_end"], holdout_split_at=d["holdout_split_at"],
        holdout_fraction=d["holdout_fraction"] or 0.2, null_values=d["null_values"], note=d["note"],
        idempotency_key=idempotency_key(request))
    located(request, f"/api/v1/projects/{m.project.slug}/models/{m.name}/training-jobs/{tj.pk}")
    return Status(202, _out(_qs().get(pk=tj.pk)))


@router.get(P + "/{pk}", response=TrainingJobOut)
@api_permission("model.view")
def get_training_job(request, project: str, model: str, pk: int):
    return _out(_get(request, project, model, pk, "model.view"))


@router.post(P + "/{pk}/cancel", response=TrainingJobOut)
@api_permission("training.run")
def cancel_training_job(request, project: str, model: str, pk: int):
    tj = jobs.training_job_cancel(training_job=_get(request, project, model, pk, "training.run"),
                                      actor=request.auth)
    return _out(_qs().get(pk=tj.pk))


# --- retraining policies ----------------------------------------------------------------------

retraining_router = Router(tags=["retraining"])
RP = "/deployments/{deployment}/retraining-policy"


# What retraining.clean_triggers accepts per trigger (it words each refusal, so the items stay dicts here).
_TRIGGER = {"oneOf": [
    {"type": "object", "required": ["kind", "rule_id"], "properties": {
        "kind": {"const": "alert_rule"}, "rule_id": {"type": "integer", "description": "an alert rule of this "
                                                                                       "deployment"}}},
    {"type": "object", "required": ["kind", "metric", "comparator", "threshold"], "properties": {
        "kind": {"const": "metric"}, "metric": {"type": "string", "pattern": METRIC_PATTERN},
        "comparator": {"enum": ["gt", "gte", "lt", "lte"]}, "threshold": {"type": "number"},
        "windows": {"type": "integer", "minimum": POLICY_LIMITS["windows"][0],
                    "maximum": POLICY_LIMITS["windows"][1], "default": 1}}}]}


def _limit(key: str, default):
    return Field(default, ge=POLICY_LIMITS[key][0], le=POLICY_LIMITS[key][1])


class RetrainingPolicyIn(InSchema):
    triggers: Annotated[list[dict], WithJsonSchema({"type": "array", "items": _TRIGGER, "minItems": 1,
                                                    "maxItems": MAX_TRIGGERS})]
    enabled: bool = True
    cooldown_minutes: int = _limit("cooldown_minutes", 24 * 60)
    max_firings: int = _limit("max_firings", 2)
    max_firings_period_hours: int = _limit("max_firings_period_hours", 168)
    min_new_labels: int = _limit("min_new_labels", 500)
    training_window_days: int = _limit("training_window_days", 30)
    holdout_fraction: float = _limit("holdout_fraction", 0.2)
    note: str = ""


class RetrainingPolicyOut(Schema):
    deployment: str
    enabled: bool
    triggers: list[dict]
    cooldown_minutes: int
    max_firings: int
    max_firings_period_hours: int
    min_new_labels: int
    training_window_days: int
    holdout_fraction: float
    note: str
    new_labels: int
    blocked_by: str | None = None
    updated_at: datetime


class RetrainIn(InSchema):
    reason: str = ""


class RetrainingFiringOut(Schema):
    id: int
    trigger: str
    episode_key: str
    reason: str
    status: str
    outcome: str
    new_labels: int
    label_rows: int
    alert_id: int | None = None
    training_job_id: int | None = None
    training_job_status: str | None = None
    version: int | None = None
    version_status: str | None = None
    shadow_run_id: int | None = None
    promotion_request_id: int | None = None
    promotion_request_status: str | None = None
    steps: list[dict]
    created_at: datetime
    fired_at: datetime | None = None


def _policy_out(policy: RetrainingPolicy) -> dict:
    state = selectors.policy_state(policy=policy)
    return {"deployment": policy.deployment.slug, **{k: getattr(policy, k) for k in (
        "enabled", "triggers", "cooldown_minutes", "max_firings", "max_firings_period_hours", "min_new_labels",
        "training_window_days", "holdout_fraction", "note", "updated_at")}, **state}


def _firing_out(f: PolicyFiring) -> dict:
    tj = f.training_job
    return {"id": f.pk, "trigger": f.trigger, "episode_key": f.episode_key, "reason": f.reason, "status": f.status,
            "outcome": f.outcome, "new_labels": f.new_labels, "label_rows": f.label_rows, "alert_id": f.alert_id,
            "training_job_id": f.training_job_id, "training_job_status": tj.status if tj else None,
            "version": f.version.version if f.version_id else None,
            "version_status": f.version.status if f.version_id else None, "shadow_run_id": f.shadow_run_id,
            "promotion_request_id": f.promotion_request_id,
            "promotion_request_status": selectors.promotion_request_statuses(firings=[f]).get(f.promotion_request_id),
            "steps": f.steps, "created_at": f.created_at,
            "fired_at": f.fired_at}


def _policy(request, deployment: str, action: str):
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action=action)
    policy = selectors.retraining_policy_for(deployment=dep)
    if policy is None:
        raise NotFound(f"{dep.slug} has no retraining policy")
    return policy


@retraining_router.get(RP, response=RetrainingPolicyOut)
@api_permission("monitoring.view")
def policy_get(request, deployment: str):
    return _policy_out(_policy(request, deployment, "monitoring.view"))


@retraining_router.put(RP, response=RetrainingPolicyOut)
@api_permission("retraining.configure")
def policy_put(request, deployment: str, payload: RetrainingPolicyIn):
    """Create or replace the deployment's policy. Triggers: ``{"kind": "alert_rule", "rule_id": 3}`` or
    ``{"kind": "metric", "metric": "realized_accuracy", "comparator": "lt", "threshold": 0.8, "windows": 3}``."""
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action="retraining.configure")
    policy = retraining_services.retraining_policy_save(deployment=dep, actor=request.auth, **payload.dict())
    return _policy_out(policy)


@retraining_router.post(RP + "/retrain", response={202: RetrainingFiringOut})
@api_permission("retraining.configure")
def policy_retrain_now(request, deployment: str, payload: RetrainIn):
    """"Retrain now": the same path and guards as an automatic firing. A refusal is answered 202 too,
    with ``status: "skipped"`` and the reason in ``outcome``."""
    policy = _policy(request, deployment, "retraining.configure")
    firing = retraining_services.retraining_retrain_now(policy=policy, actor=request.auth, reason=payload.reason)
    located(request, f"/api/v1/deployments/{policy.deployment.slug}/retraining-policy/firings/{firing.pk}")
    return Status(202, _firing_out(selectors.firing_get(policy=policy, pk=firing.pk)))


@retraining_router.get(RP + "/firings", response=list[RetrainingFiringOut])
@api_permission("monitoring.view")
def policy_firings(request, deployment: str, page: Query[Page], status: str = ""):
    policy = _policy(request, deployment, "monitoring.view")
    qs = selectors.firing_list(policy=policy)
    if status:
        qs = qs.filter(status=status)
    return [_firing_out(f) for f in paginate(request, qs, page)]


@retraining_router.get(RP + "/firings/{pk}", response=RetrainingFiringOut)
@api_permission("monitoring.view")
def policy_firing(request, deployment: str, pk: int):
    f = selectors.firing_get(policy=_policy(request, deployment, "monitoring.view"), pk=pk)
    if f is None:
        raise NotFound("No such firing")
    return _firing_out(f)


router.add_router("/", retraining_router)

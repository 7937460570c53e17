"""Retraining policy API: /api/v1/deployments/{deployment}/retraining-policy[/retrain|/firings]."""

from datetime import datetime

from ninja import Router, Schema, Status

from apps.common.errors import NotFound
from apps.deployments.selectors import deployment_get_by_slug
from apps.projects.access import api_permission

from . import retraining
from . import selectors_retraining as sel
from .models_retraining import PolicyFiring, RetrainingPolicy

router = Router(tags=["retraining"])
P = "/deployments/{deployment}/retraining-policy"


class PolicyIn(Schema):
    triggers: list[dict]
    enabled: bool = True
    cooldown_minutes: int = 24 * 60
    max_firings: int = 2
    max_firings_period_hours: int = 168
    min_new_labels: int = 500
    training_window_days: int = 30
    holdout_fraction: float = 0.2
    note: str = ""


class PolicyOut(Schema):
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


class RetrainIn(Schema):
    reason: str = ""


class FiringOut(Schema):
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
    state = sel.policy_state(policy=policy)
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
            "promotion_request_status": sel.promotion_request_statuses(firings=[f]).get(f.promotion_request_id),
            "steps": f.steps, "created_at": f.created_at,
            "fired_at": f.fired_at}


def _policy(request, deployment: str, action: str):
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action=action)
    policy = sel.retraining_policy_for(deployment=dep)
    if policy is None:
        raise NotFound(f"{dep.slug} has no retraining policy")
    return policy


@router.get(P, response=PolicyOut)
@api_permission("monitoring.view")
def policy_get(request, deployment: str):
    return _policy_out(_policy(request, deployment, "monitoring.view"))


@router.put(P, response=PolicyOut)
@api_permission("retraining.configure")
def policy_put(request, deployment: str, payload: PolicyIn):
    """Create or replace the deployment's policy. Triggers: ``{"kind": "alert_rule", "rule_id": 3}`` or
    ``{"kind": "metric", "metric": "realized_accuracy", "comparator": "lt", "threshold": 0.8, "windows": 3}``."""
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action="retraining.configure")
    policy = retraining.retraining_policy_save(deployment=dep, actor=request.auth, **payload.dict())
    return _policy_out(policy)


@router.post(P + "/retrain", response={202: FiringOut})
@api_permission("retraining.configure")
def policy_retrain_now(request, deployment: str, payload: RetrainIn):
    """"Retrain now": the same path and guards as an automatic firing. A refusal is answered 202 too,
    with ``status: "skipped"`` and the reason in ``outcome``."""
    policy = _policy(request, deployment, "retraining.configure")
    firing = retraining.retraining_retrain_now(policy=policy, actor=request.auth, reason=payload.reason)
    return Status(202, _firing_out(sel.firing_get(policy=policy, pk=firing.pk)))


@router.get(P + "/firings", response=list[FiringOut])
@api_permission("monitoring.view")
def policy_firings(request, deployment: str, limit: int = 50, offset: int = 0, status: str = ""):
    policy = _policy(request, deployment, "monitoring.view")
    qs = sel.firing_list(policy=policy)
    if status:
        qs = qs.filter(status=status)
    return [_firing_out(f) for f in qs[max(0, offset): max(0, offset) + max(1, min(limit, 500))]]


@router.get(P + "/firings/{pk}", response=FiringOut)
@api_permission("monitoring.view")
def policy_firing(request, deployment: str, pk: int):
    f = sel.firing_get(policy=_policy(request, deployment, "monitoring.view"), pk=pk)
    if f is None:
        raise NotFound("No such firing")
    return _firing_out(f)

"""Monitoring API: outcomes (flat, by deployment slug), windows, on-demand checks, alert rules, alerts."""

from django.conf import settings
from ninja import Query, Router, Status

from apps.common.schemas import Page, job_location, located, paginate
from apps.deployments.selectors import deployment_get_by_slug
from apps.projects.access import api_permission
from apps.projects.schemas import JobAcceptedOut, job_accepted

from . import selectors, services
from .schemas import (
    AlertOut,
    AlertRuleIn,
    AlertRuleOut,
    DriftCheckIn,
    OutcomesIn,
    OutcomesOut,
    OverrideIn,
    SettingsIn,
    SettingsOut,
    SnoozeIn,
    WindowOut,
)

router = Router(tags=["monitoring"])


@router.post("/deployments/{deployment}/outcomes", response={200: OutcomesOut, 202: OutcomesOut})
@api_permission("outcome.post")
def outcomes_post(request, deployment: str, payload: OutcomesIn):
    """Ground truth by prediction request id; idempotent (conflicting repeats are reported, never applied).
    202 when ids are held pending (not in the log yet) or when a post above MONITORING_OUTCOMES_SYNC_MAX
    items goes to a background job."""
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action="outcome.post")
    if len(payload.outcomes) > settings.MONITORING_OUTCOMES_SYNC_MAX:
        job = services.outcomes_ingest_request(deployment=dep, actor=request.auth, items=payload.outcomes)
        job_location(request, job.pk)
        return Status(202, {"status": "queued", "received": len(payload.outcomes), "job_id": str(job.pk)})
    result = services.outcomes_ingest(deployment=dep, actor=request.auth, items=payload.outcomes)
    return Status(202, {**result, "status": "pending"}) if result["pending"] else Status(200, result)


@router.get("/deployments/{deployment}/monitoring/windows", response=list[WindowOut])
@api_permission("monitoring.view")
def windows_list(request, deployment: str, page: Query[Page]):
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action="monitoring.view")
    return paginate(request, selectors.window_list(deployment=dep), page)


@router.post("/deployments/{deployment}/monitoring/checks", response={202: JobAcceptedOut})
@api_permission("monitoring.run")
def drift_check_create(request, deployment: str, payload: DriftCheckIn):
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action="monitoring.run")
    job = services.drift_check_request(deployment=dep, actor=request.auth, minutes=payload.minutes)
    job_location(request, job.pk)
    return Status(202, job_accepted(job))


@router.post("/deployments/{deployment}/monitoring/rules", response={201: AlertRuleOut})
@api_permission("monitoring.configure")
def alert_rule_create(request, deployment: str, payload: AlertRuleIn):
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action="monitoring.configure")
    rule = services.alert_rule_create(deployment=dep, actor=request.auth, **payload.dict())
    located(request, f"/api/v1/deployments/{dep.slug}/monitoring/rules/{rule.pk}")
    return Status(201, rule)


@router.get("/deployments/{deployment}/alerts", response=list[AlertOut])
@api_permission("monitoring.view")
def alerts_list(request, deployment: str, page: Query[Page], status: str = ""):
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action="monitoring.view")
    return [selectors.alert_out(a) for a in paginate(request, selectors.alert_list(deployment=dep, status=status), page)]


@router.post("/alerts/{alert_id}/acknowledge", response=AlertOut)
@api_permission("alert.acknowledge")
def alert_acknowledge(request, alert_id: int):
    alert = selectors.alert_get_for_user(user=request.auth, alert_id=alert_id)
    return selectors.alert_out(services.alert_acknowledge(alert=alert, actor=request.auth))


@router.post("/alerts/{alert_id}/snooze", response=AlertOut)
@api_permission("alert.acknowledge")
def alert_snooze(request, alert_id: int, payload: SnoozeIn):
    alert = selectors.alert_get_for_user(user=request.auth, alert_id=alert_id)
    return selectors.alert_out(services.alert_snooze(alert=alert, actor=request.auth, minutes=payload.minutes))


@router.get("/deployments/{deployment}/monitoring/settings", response=SettingsOut)
@api_permission("monitoring.view")
def settings_get(request, deployment: str):
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action="monitoring.view")
    return selectors.settings_out(deployment=dep)


@router.put("/deployments/{deployment}/monitoring/settings", response=SettingsOut)
@api_permission("monitoring.configure")
def settings_update(request, deployment: str, payload: SettingsIn):
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action="monitoring.configure")
    services.monitor_settings_update(deployment=dep, actor=request.auth, **payload.dict())
    return selectors.settings_out(deployment=dep)


@router.post("/deployments/{deployment}/monitoring/overrides", response=SettingsOut)
@api_permission("monitoring.configure")
def override_set(request, deployment: str, payload: OverrideIn):
    """Per-feature thresholds (alpha, wasserstein, js, psi); the reason is required and recorded."""
    dep = deployment_get_by_slug(user=request.auth, slug=deployment, action="monitoring.configure")
    services.threshold_override_set(deployment=dep, actor=request.auth, **payload.dict())
    return selectors.settings_out(deployment=dep)

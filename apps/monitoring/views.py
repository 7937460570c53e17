"""Analyst pages: project overview, per-deployment dashboard (htmx window/feature controls), alerts."""

from django.shortcuts import render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from apps.common.errors import ApplicationError
from apps.common.htmx import render_job_status
from apps.deployments.selectors import deployment_get_for_user
from apps.projects.access import project_view
from apps.projects.permissions import can

from . import selectors, services


def _count(request) -> int:
    try:
        value = int(request.GET.get("windows", 24))
    except ValueError:
        value = 24
    return value if value in selectors.WINDOW_CHOICES else 24


@project_view("monitoring.view")
def overview(request, project):
    return render(request, "monitoring/overview.html", {
        "project": project, "tab": "monitoring", "title": f"Monitoring · {project.name}",
        "rows": selectors.project_health(project=project),
        "active_alerts": selectors.alert_list(project=project, status="active")[:20],
        "can_ack": can(request.user, project, "alert.acknowledge"),
    })


@vary_on_headers("HX-Request")
@project_view("monitoring.view")
def dashboard(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="monitoring.view")
    ctx = {"project": project, "tab": "monitoring", "deployment": dep, "title": f"Monitoring · {dep.slug}",
           "alerts": selectors.alert_list(deployment=dep, status="active")[:20],
           "can_ack": can(request.user, project, "alert.acknowledge"),
           "can_run": can(request.user, project, "monitoring.run"),
           "config": selectors.settings_out(deployment=dep),
           **selectors.dashboard_context(deployment=dep, count=_count(request), feature=request.GET.get("feature"))}
    if request.htmx and request.htmx.target == "dashboard-body":
        return render(request, "monitoring/_dashboard_body.html", ctx)
    return render(request, "monitoring/dashboard.html", ctx)


@vary_on_headers("HX-Request")
@project_view("monitoring.view")
def feature_detail(request, project, deployment, feature):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="monitoring.view")
    if not request.htmx:
        return dashboard(request, project=project.slug, deployment=deployment)
    windows = selectors.recent_windows(deployment=dep, count=_count(request))
    ctx = {"project": project, "deployment": dep, "count": _count(request),
           **selectors.feature_context(deployment=dep, windows=windows, feature=feature)}
    return render(request, "monitoring/_feature.html", ctx)


@project_view("monitoring.view")
def alert_list(request, project):
    status = request.GET.get("status", "active")
    ctx = {"project": project, "tab": "monitoring", "title": "Alerts", "status": status,
           "alerts": selectors.alert_list(project=project, status="" if status == "all" else status)[:200],
           "can_ack": can(request.user, project, "alert.acknowledge")}
    if request.htmx:
        return render(request, "monitoring/_alerts.html", ctx)
    return render(request, "monitoring/alert_list.html", ctx)


def _alert_action(request, project, alert_id, action):
    alert = selectors.alert_get_for_user(user=request.user, alert_id=alert_id, project=project)
    error = ""
    try:
        alert = action(alert)
    except ApplicationError as exc:
        error = exc.message
    return render(request, "monitoring/_alert_row.html",
                  {"project": project, "a": alert, "can_ack": True, "error": error}, status=422 if error else 200)


@require_POST
@project_view("alert.acknowledge")
def alert_acknowledge(request, project, alert_id):
    return _alert_action(request, project, alert_id,
                         lambda a: services.alert_acknowledge(alert=a, actor=request.user))


@require_POST
@project_view("alert.acknowledge")
def alert_snooze(request, project, alert_id):
    try:
        minutes = int(request.POST.get("minutes", 60))
    except ValueError:
        minutes = 0
    return _alert_action(request, project, alert_id,
                         lambda a: services.alert_snooze(alert=a, actor=request.user, minutes=minutes))


@require_POST
@project_view("monitoring.run")
def drift_check_create(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="monitoring.run")
    try:
        minutes = int(request.POST.get("minutes", 60))
        job = services.drift_check_request(deployment=dep, actor=request.user, minutes=minutes)
    except (ApplicationError, ValueError) as exc:
        return render(request, "monitoring/_check_error.html", {"error": getattr(exc, "message", str(exc))},
                      status=422)
    return render_job_status(request, job)

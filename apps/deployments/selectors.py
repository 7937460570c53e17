"""Reads shared by the deployment pages, the API and other apps (monitoring, promotion)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from apps.common.errors import NotFound, PermissionDenied
from apps.projects.models import Project
from apps.projects.permissions import can

from . import stats
from .models import Deployment, DeploymentApiKey, DeploymentEvent, PredictionLog, PredictionMinuteStat


def deployment_list_for_project(*, project: Project) -> QuerySet[Deployment]:
    return (Deployment.objects.filter(project=project)
            .select_related("production_version", "registered_model", "owner").order_by("slug"))


def deployment_get_for_user(*, user, project: Project, slug: str, action: str = "deployment.view") -> Deployment:
    """``project`` comes from ``project_get_for_user``; the deployment must belong to it."""
    dep = deployment_list_for_project(project=project).filter(slug=slug).first()
    if dep is None:
        raise NotFound(f"No deployment {slug!r} in {project.name}")
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")
    return dep


def deployment_get_by_slug(*, user, slug: str, action: str = "deployment.view") -> Deployment:
    """A deployment by its portal-wide slug, if ``user`` may perform ``action`` in its project."""
    from apps.projects.selectors import project_get_for_user

    dep = Deployment.objects.select_related("project").filter(slug=slug).first()
    if dep is None:
        raise NotFound(f"No deployment named {slug!r}")
    try:
        project = project_get_for_user(user=user, slug=dep.project.slug, action=action)
    except NotFound:  # in a project the user cannot see: the same answer as a missing one (no project name)
        raise NotFound(f"No deployment named {slug!r}") from None
    return deployment_get_for_user(user=user, project=project, slug=slug, action=action)


def deployable_versions(*, project: Project):
    from apps.registry.models import ModelVersion, VersionStatus

    return (ModelVersion.objects.filter(model__project=project, status=VersionStatus.READY)
            .select_related("model").order_by("model__name", "-version"))


def api_key_list(*, deployment: Deployment) -> QuerySet[DeploymentApiKey]:
    return deployment.api_keys.select_related("created_by").order_by("revoked_at", "-created_at")


def deployment_events(*, deployment: Deployment) -> QuerySet[DeploymentEvent]:
    return deployment.events.select_related("version", "previous_version", "actor", "version__model")


def deployment_version_at(*, deployment: Deployment, at):
    """The model version that was production at time ``at`` (None before the first deploy)."""
    event = (deployment.events.filter(kind__in=DeploymentEvent.VERSION_KINDS, created_at__lte=at)
             .order_by("-created_at", "-id").select_related("version").first())
    return event.version if event else None


def prediction_log_for_deployment(*, deployment: Deployment, since=None, until=None,
                                  version=None) -> QuerySet[PredictionLog]:
    qs = PredictionLog.objects.filter(deployment=deployment)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    if version is not None:
        qs = qs.filter(version=version)
    return qs.order_by("-created_at", "-id")


def deployment_minute_points(*, deployment: Deployment, minutes: int = 60, now=None) -> list[stats.MinutePoint]:
    """Per-minute requests, errors and latency percentiles (all versions merged) from the minute stats."""
    now = now or timezone.now()
    since = (now - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    merged: dict = {}
    for row in PredictionMinuteStat.objects.filter(deployment=deployment, minute__gte=since).order_by("minute"):
        m = merged.setdefault(row.minute, {"requests": 0, "errors": 0, "rows": 0, "hist": stats.empty_hist()})
        m["requests"] += row.requests
        m["errors"] += row.errors
        m["rows"] += row.rows
        m["hist"] = stats.merge(m["hist"], row.latency_hist or [])
    return [stats.MinutePoint(minute=k, requests=v["requests"], errors=v["errors"], rows=v["rows"],
                              p50=stats.percentile(v["hist"], 0.50), p95=stats.percentile(v["hist"], 0.95),
                              p99=stats.percentile(v["hist"], 0.99)) for k, v in sorted(merged.items())]


def deployment_charts(*, deployment: Deployment, minutes: int = 60) -> dict:
    """Plotly figures (plain dicts): traffic and error rate, latency percentiles."""
    now = timezone.now()
    points = deployment_minute_points(deployment=deployment, minutes=minutes, now=now)
    xs = [p.minute.isoformat() for p in points]
    window = [(now - timedelta(minutes=minutes)).isoformat(), (now + timedelta(minutes=1)).isoformat()]
    traffic = {
        "data": [
            {"type": "bar", "x": xs, "y": [p.requests for p in points], "name": "requests/min", "xperiod": 60000,
             "marker": {"color": "#3b6ea5"}},
            {"type": "scatter", "mode": "lines+markers", "x": xs, "y": [round(100 * p.error_rate, 2) for p in points],
             "name": "error rate %", "yaxis": "y2", "line": {"color": "#c0392b"}},
        ],
        "layout": {"height": 280, "title": {"text": "Requests per minute and error rate"},
                   "yaxis": {"title": {"text": "requests"}, "rangemode": "tozero"},
                   "yaxis2": {"title": {"text": "errors %"}, "overlaying": "y", "side": "right",
                              "rangemode": "tozero"},
                   "legend": {"orientation": "h", "y": -0.25}, "xaxis": {"type": "date", "range": window}},
    }
    latency = {
        "data": [
            {"type": "scatter", "mode": "lines+markers", "x": xs, "y": [_r(getattr(p, q)) for p in points],
             "name": q} for q in ("p50", "p95", "p99")
        ],
        "layout": {"height": 280, "title": {"text": "Latency (ms)"},
                   "yaxis": {"title": {"text": "ms"}, "rangemode": "tozero"},
                   "legend": {"orientation": "h", "y": -0.25}, "xaxis": {"type": "date", "range": window}},
    }
    totals = {"requests": sum(p.requests for p in points), "errors": sum(p.errors for p in points),
              "rows": sum(p.rows for p in points)}
    return {"traffic": traffic, "latency": latency, "totals": totals, "has_data": bool(points)}


def _r(value):
    return round(value, 3) if value is not None else None

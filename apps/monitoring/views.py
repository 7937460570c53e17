"""Analyst pages: project overview, per-deployment dashboard (htmx window/feature controls), alerts."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HTMX_STOP_POLLING

from apps.common.errors import ApplicationError, NotFound
from apps.common.htmx import render_job_status
from apps.deployments.selectors import deployment_get_for_user
from apps.projects.access import project_view
from apps.projects.permissions import can

from . import forms, selectors, services


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
    # the body alone for the window menu and the refresh after "Check now"; a history restore gets the page
    if request.htmx and request.htmx.target == "dashboard-body" and not request.htmx.history_restore_request:
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


# --- the configuration page: monitoring settings, per-feature overrides, alert rules -------------------------


def _rule_metrics(dep) -> list[tuple[str, str]]:
    features = [c["name"] for c in dep.registered_model.input_contract or [] if isinstance(c, dict) and "name" in c]
    return ([(k, f"{label} ({k})") for k, label in services.METRICS.items()]
            + [(f"drift:{f}", f"Drift of {f} (drift:{f})") for f in features])


def _features(dep) -> list[str]:
    return [c["name"] for c in dep.registered_model.input_contract or [] if isinstance(c, dict) and "name" in c]


def _settings_form(dep, data=None) -> "forms.SettingsForm":
    ms = services.monitor_settings_for(dep)
    initial = {"window_kind": ms.window_kind, "window_count": ms.window_count, "window_minutes": ms.window_minutes,
               "schedule_enabled": ms.schedule_enabled,
               **{f"t_{k}": v for k, v in (ms.thresholds or {}).items()}}
    return forms.SettingsForm(data, initial=initial)


def _rule_initial(rule) -> dict:
    return {"name": rule.name, "metric": rule.metric, "comparator": rule.comparator, "threshold": rule.threshold,
            "consecutive": rule.consecutive, "severity": rule.severity, "channels": rule.channels,
            "emails": ", ".join(rule.emails or []), "webhook_url": rule.webhook_url,
            "cooldown_minutes": rule.cooldown_minutes}


def _configure_page(request, project, dep, *, status=200, **forms_given):
    from .models import AlertRule

    rules = list(AlertRule.objects.filter(deployment=dep).order_by("name"))
    for rule in rules:  # the latest webhook test of each rule, shown beside its "Test webhook" button
        rule.last_test = rule.tests.order_by("-created_at", "-id").first()
    edit_id = forms_given.pop("edit_id", None) or _int(request.GET.get("edit"))
    edit_rule = next((r for r in rules if r.pk == edit_id), None)
    ctx = {"project": project, "tab": "monitoring", "deployment": dep, "title": f"Configure monitoring · {dep.slug}",
           "config": selectors.settings_out(deployment=dep), "rules": rules, "edit_rule": edit_rule,
           "can_configure": can(request.user, project, "monitoring.configure"),
           "settings_form": forms_given.get("settings_form") or _settings_form(dep),
           "override_form": forms_given.get("override_form") or forms.OverrideForm(features=_features(dep)),
           "rule_form": forms_given.get("rule_form") or forms.AlertRuleForm(metrics=_rule_metrics(dep)),
           "edit_form": forms_given.get("edit_form") or (
               forms.AlertRuleForm(initial=_rule_initial(edit_rule), metrics=_rule_metrics(dep), auto_id="edit_%s")
               if edit_rule else None)}
    return render(request, "monitoring/configure.html", ctx, status=status)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _service_error(form, exc: ApplicationError, fields: dict | None = None) -> None:
    field = next((e.get("field") for e in exc.errors if e.get("field")), None)
    field = (fields or {}).get(field, field)
    form.add_error(field if field in form.fields else None, exc.message)


@project_view("monitoring.view")
def configure(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="monitoring.view")
    return _configure_page(request, project, dep)


@require_POST
@project_view("monitoring.configure")
def configure_settings(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="monitoring.configure")
    form = _settings_form(dep, request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.monitor_settings_update(
                deployment=dep, actor=request.user, window_kind=d["window_kind"], window_count=d["window_count"],
                window_minutes=d["window_minutes"], schedule_enabled=d["schedule_enabled"],
                thresholds=form.thresholds())
            messages.success(request, "Monitoring settings saved.")
            return redirect("monitoring:configure", project=project.slug, deployment=dep.slug)
        except ApplicationError as exc:
            _service_error(form, exc)
    return _configure_page(request, project, dep, status=422, settings_form=form)


@require_POST
@project_view("monitoring.configure")
def configure_override(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="monitoring.configure")
    form = forms.OverrideForm(request.POST, features=_features(dep))
    if form.is_valid():
        try:
            services.threshold_override_set(deployment=dep, actor=request.user, feature=form.cleaned_data["feature"],
                                            values=form.values(), reason=form.cleaned_data["reason"])
            messages.success(request, f"Thresholds of {form.cleaned_data['feature']} saved.")
            return redirect("monitoring:configure", project=project.slug, deployment=dep.slug)
        except ApplicationError as exc:
            _service_error(form, exc, {"values": None})
    return _configure_page(request, project, dep, status=422, override_form=form)


def _rule_kwargs(form) -> dict:
    d = form.cleaned_data
    return {k: d[k] for k in ("name", "metric", "comparator", "threshold", "consecutive", "severity", "channels",
                              "emails", "webhook_url", "webhook_secret", "cooldown_minutes")}


@require_POST
@project_view("monitoring.configure")
def configure_rule_create(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="monitoring.configure")
    form = forms.AlertRuleForm(request.POST, metrics=_rule_metrics(dep))
    if form.is_valid():
        try:
            rule = services.alert_rule_create(deployment=dep, actor=request.user, **_rule_kwargs(form))
            messages.success(request, f"Alert rule “{rule.name}” created.")
            return redirect("monitoring:configure", project=project.slug, deployment=dep.slug)
        except ApplicationError as exc:
            _service_error(form, exc)
    return _configure_page(request, project, dep, status=422, rule_form=form)


def _rule_for(request, project, deployment, rule_id):
    from .models import AlertRule

    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="monitoring.configure")
    rule = AlertRule.objects.filter(deployment=dep, pk=rule_id).first()
    if rule is None:
        raise NotFound("No such alert rule on this deployment")
    return dep, rule


@require_POST
@project_view("monitoring.configure")
def configure_rule_update(request, project, deployment, rule_id):
    dep, rule = _rule_for(request, project, deployment, rule_id)
    form = forms.AlertRuleForm(request.POST, metrics=_rule_metrics(dep), auto_id="edit_%s")
    if form.is_valid():
        try:
            services.alert_rule_update(rule=rule, actor=request.user, **_rule_kwargs(form))
            messages.success(request, f"Alert rule “{rule.name}” saved.")
            return redirect("monitoring:configure", project=project.slug, deployment=dep.slug)
        except ApplicationError as exc:
            _service_error(form, exc)
    return _configure_page(request, project, dep, status=422, edit_form=form, edit_id=rule.pk)


@require_POST
@project_view("monitoring.configure")
def configure_rule_mute(request, project, deployment, rule_id):
    dep, rule = _rule_for(request, project, deployment, rule_id)
    enabled = request.POST.get("enabled") == "1"
    services.alert_rule_enabled_set(rule=rule, actor=request.user, enabled=enabled)
    messages.success(request, f"Alert rule “{rule.name}” {'unmuted' if enabled else 'muted'}.")
    return redirect("monitoring:configure", project=project.slug, deployment=dep.slug)


@require_POST
@project_view("monitoring.configure")
def configure_rule_test(request, project, deployment, rule_id):
    """Send a test payload to the rule's webhook (a worker delivers it); the result shows beside the rule."""
    dep, rule = _rule_for(request, project, deployment, rule_id)
    try:
        n = services.alert_rule_webhook_test(rule=rule, actor=request.user)
    except ApplicationError as exc:
        if request.htmx:
            return render(request, "monitoring/_webhook_test.html", {"error": exc.message, "rule": rule}, status=422)
        messages.error(request, exc.message)
        return redirect("monitoring:configure", project=project.slug, deployment=dep.slug)
    if request.htmx:
        return render(request, "monitoring/_webhook_test.html", {"n": n, "rule": rule, "project": project,
                                                                 "deployment": dep})
    messages.success(request, f"Test payload sent to the webhook of “{rule.name}”; its result shows beside the rule.")
    return redirect("monitoring:configure", project=project.slug, deployment=dep.slug)


@project_view("monitoring.configure")
def configure_rule_test_status(request, project, deployment, rule_id, notification_id):
    dep, rule = _rule_for(request, project, deployment, rule_id)
    n = rule.tests.filter(pk=notification_id).first()
    if n is None:
        raise NotFound("No such webhook test of this rule")
    response = render(request, "monitoring/_webhook_test.html", {"n": n, "rule": rule, "project": project,
                                                                 "deployment": dep})
    if n.status in (n.Status.DELIVERED, n.Status.FAILED):
        response.status_code = HTMX_STOP_POLLING
    return response

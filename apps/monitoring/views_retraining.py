"""Retraining policy pages: configure a deployment's policy, retrain now, watch the history."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from apps.common.errors import ApplicationError
from apps.common.forms import add_domain_error
from apps.deployments.selectors import deployment_get_for_user
from apps.projects.access import project_view
from apps.projects.permissions import can

from . import retraining
from . import selectors_retraining as sel
from .forms_retraining import RetrainingPolicyForm, RetrainNowForm
from .models import AlertRule
from .models_retraining import PolicyFiring
from .services import METRICS


def _metrics(dep) -> list[tuple[str, str]]:
    names = [c["name"] for c in dep.registered_model.input_contract or []]
    return [*METRICS.items(), *((f"drift:{n}", f"Drift score of {n}") for n in names)]


def _ctx(request, project, dep, **extra) -> dict:
    policy = sel.retraining_policy_for(deployment=dep)
    firings = list(sel.firing_list(policy=policy)[:50]) if policy else []
    statuses = sel.promotion_request_statuses(firings=firings)
    for f in firings:
        f.promotion_status = statuses.get(f.promotion_request_id)
    return {"project": project, "tab": "monitoring", "deployment": dep, "policy": policy, "firings": firings,
            "title": f"Retraining · {dep.slug}", "in_flight": any(f.status in PolicyFiring.IN_FLIGHT for f in firings),
            "state": sel.policy_state(policy=policy) if policy else None,
            "trigger_labels": sel.trigger_labels(policy=policy) if policy else [],
            "can_configure": can(request.user, project, "retraining.configure"), **extra}


def _form(dep, data=None, policy=None):
    rules = AlertRule.objects.filter(deployment=dep).order_by("name")
    return RetrainingPolicyForm(data, rules=rules, metrics=_metrics(dep),
                                initial=RetrainingPolicyForm.initial_for(policy) if data is None else None)


@project_view("monitoring.view")
def retraining_list(request, project):
    return render(request, "monitoring/retraining/list.html", {
        "project": project, "tab": "monitoring", "title": f"Retraining · {project.name}",
        "rows": sel.policies_for_project(project=project)})


@project_view("monitoring.view")
def retraining_policy(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="monitoring.view")
    ctx = _ctx(request, project, dep)
    if request.htmx and request.htmx.target == "retraining-history":
        return render(request, "monitoring/retraining/_history.html", ctx,
                      status=200 if ctx["in_flight"] else HTMX_STOP_POLLING)
    ctx["form"] = _form(dep, policy=ctx["policy"])
    ctx["retrain_form"] = RetrainNowForm()
    return render(request, "monitoring/retraining/policy.html", ctx)


@require_POST
@project_view("retraining.configure")
def retraining_policy_save(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="retraining.configure")
    ctx = _ctx(request, project, dep)
    form = _form(dep, request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            retraining.retraining_policy_save(
                deployment=dep, actor=request.user, triggers=form.triggers(), enabled=d["enabled"],
                cooldown_minutes=d["cooldown_minutes"], max_firings=d["max_firings"],
                max_firings_period_hours=d["max_firings_period_hours"], min_new_labels=d["min_new_labels"],
                training_window_days=d["training_window_days"], holdout_fraction=d["holdout_fraction"],
                note=d["note"])
            return redirect("monitoring:retraining-policy", project=project.slug, deployment=dep.slug)
        except ApplicationError as exc:
            add_domain_error(form, exc)
    ctx.update(form=form, retrain_form=RetrainNowForm())
    return render(request, "monitoring/retraining/policy.html", ctx, status=422)


@require_POST
@project_view("retraining.configure")
def retraining_retrain_now(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="retraining.configure")
    policy = sel.retraining_policy_for(deployment=dep)
    form = RetrainNowForm(request.POST)
    error = ""
    if policy is None:
        error = "Save a policy first: \"Retrain now\" follows its training window and guards"
    elif form.is_valid():
        try:
            retraining.retraining_retrain_now(policy=policy, actor=request.user, reason=form.cleaned_data["reason"])
        except ApplicationError as exc:
            error = exc.message
    ctx = _ctx(request, project, dep, retrain_error=error)
    if request.htmx:
        return render(request, "monitoring/retraining/_history.html", ctx, status=422 if error else 200)
    if error:
        ctx.update(form=_form(dep, policy=ctx["policy"]), retrain_form=form)
        return render(request, "monitoring/retraining/policy.html", ctx, status=422)
    return redirect("monitoring:retraining-policy", project=project.slug, deployment=dep.slug)

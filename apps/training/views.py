"""Pages of training jobs (under a registered model) and retraining policies (under a deployment)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from apps.common.errors import ApplicationError
from apps.common.forms import add_domain_error
from apps.deployments.selectors import deployment_get_for_user
from apps.monitoring.models import AlertRule
from apps.monitoring.services import METRICS
from apps.projects.access import project_view
from apps.projects.permissions import can
from apps.registry import selectors as registry_selectors
from apps.registry.models import NATIVE_FORMATS, VersionStatus

from . import selectors
from .forms import RetrainingPolicyForm, RetrainNowForm, TrainingJobForm
from .models import PolicyFiring, TrainingJob
from .services import jobs
from .services import retraining as retraining_services


def _ctx(project, **extra) -> dict:
    return {"project": project, "tab": "registry", **extra}


def _refittable(model):
    return model.versions.filter(status__in=[VersionStatus.READY, VersionStatus.ARCHIVED]).exclude(
        safe_artifact_key="").exclude(artifact_format__in=NATIVE_FORMATS).order_by("-version")


@project_view("model.view")
def training_list(request, project, model):
    model_obj = registry_selectors.registered_model_get(project=project, name=model)
    jobs = TrainingJob.objects.filter(model=model_obj).select_related("job", "parent_version", "result_version",
                                                                      "requested_by")[:100]
    return render(request, "training/jobs/list.html", _ctx(
        project, title=f"Training jobs of {model_obj.name}", model=model_obj, jobs=jobs,
        can_train=can(request.user, project, "training.run")))


@project_view("training.run")
def training_create(request, project, model):
    model_obj = registry_selectors.registered_model_get(project=project, name=model)
    versions = list(_refittable(model_obj))
    form = TrainingJobForm(request.POST or None, request.FILES or None, versions=versions)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            d = form.cleaned_data
            try:
                tj = jobs.training_job_create(
                    model=model_obj, actor=request.user, parent_version=d["parent_version"], labels=d["labels"],
                    labels_filename=d["labels"].name, timestamp_column=d["timestamp_column"],
                    label_column=d["label_column"], window_start=d["window_start"], window_end=d["window_end"],
                    holdout_split_at=d["holdout_split_at"], holdout_fraction=d["holdout_fraction"] or 0.2,
                    null_values=d["null_values"], note=d["note"])
                return redirect("training:training-detail", project=project.slug, model=model_obj.name, pk=tj.pk)
            except ApplicationError as exc:
                add_domain_error(form, exc)
        status = 422
    return render(request, "training/jobs/create.html", _ctx(
        project, title=f"Train {model_obj.name}", model=model_obj, form=form, versions=versions), status=status)


def _job(project, model, pk) -> TrainingJob:
    model_obj = registry_selectors.registered_model_get(project=project, name=model)
    return get_object_or_404(TrainingJob.objects.select_related(
        "job", "parent_version", "result_version", "training_set", "feature_set", "requested_by", "model"),
        pk=pk, model=model_obj)


def _metric_rows(tj: TrainingJob) -> list[dict]:
    cand, par = (tj.metrics or {}).get("candidate") or {}, (tj.metrics or {}).get("parent") or {}
    rows = []
    for name in [k for k in cand if k != "n"]:
        c, p = cand.get(name), par.get(name)
        lower_better = name in ("log_loss", "mae", "rmse")
        better = None if c is None or p is None else (c < p if lower_better else c > p)
        rows.append({"name": name, "candidate": c, "parent": p, "delta": (c - p) if None not in (c, p) else None,
                     "better": better})
    return rows


@project_view("model.view")
def training_detail(request, project, model, pk):
    tj = _job(project, model, pk)
    ctx = _ctx(project, title=f"Training job #{tj.pk}", tj=tj, model=tj.model, metric_rows=_metric_rows(tj),
               can_train=can(request.user, project, "training.run"))
    if request.htmx:
        final = tj.job is None or tj.job.is_final
        return render(request, "training/jobs/_status.html", ctx, status=HTMX_STOP_POLLING if final else 200)
    return render(request, "training/jobs/detail.html", ctx)


@require_POST
@project_view("training.run")
def training_cancel(request, project, model, pk):
    tj = _job(project, model, pk)
    error = ""
    try:
        tj = jobs.training_job_cancel(training_job=tj, actor=request.user)
    except ApplicationError as exc:
        error = exc.message
    ctx = _ctx(project, tj=tj, model=tj.model, metric_rows=_metric_rows(tj), error=error,
               can_train=can(request.user, project, "training.run"))
    if request.htmx:
        return render(request, "training/jobs/_status.html", ctx)
    return redirect("training:training-detail", project=project.slug, model=tj.model.name, pk=tj.pk)


# --- retraining policies ----------------------------------------------------------------------

def _metrics(dep) -> list[tuple[str, str]]:
    names = [c["name"] for c in dep.registered_model.input_contract or []]
    return [*METRICS.items(), *((f"drift:{n}", f"Drift score of {n}") for n in names)]


def _policy_ctx(request, project, dep, **extra) -> dict:
    policy = selectors.retraining_policy_for(deployment=dep)
    firings = list(selectors.firing_list(policy=policy)[:50]) if policy else []
    statuses = selectors.promotion_request_statuses(firings=firings)
    for f in firings:
        f.promotion_status = statuses.get(f.promotion_request_id)
    return {"project": project, "tab": "monitoring", "deployment": dep, "policy": policy, "firings": firings,
            "title": f"Retraining · {dep.slug}", "in_flight": any(f.status in PolicyFiring.IN_FLIGHT for f in firings),
            "state": selectors.policy_state(policy=policy) if policy else None,
            "trigger_labels": selectors.trigger_labels(policy=policy) if policy else [],
            "can_configure": can(request.user, project, "retraining.configure"), **extra}


def _form(dep, data=None, policy=None):
    rules = AlertRule.objects.filter(deployment=dep).order_by("name")
    return RetrainingPolicyForm(data, rules=rules, metrics=_metrics(dep),
                                initial=RetrainingPolicyForm.initial_for(policy) if data is None else None)


@project_view("monitoring.view")
def retraining_list(request, project):
    return render(request, "training/retraining/list.html", {
        "project": project, "tab": "monitoring", "title": f"Retraining · {project.name}",
        "rows": selectors.policies_for_project(project=project)})


@project_view("monitoring.view")
def retraining_policy(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="monitoring.view")
    ctx = _policy_ctx(request, project, dep)
    if request.htmx and request.htmx.target == "retraining-history":
        return render(request, "training/retraining/_history.html", ctx,
                      status=200 if ctx["in_flight"] else HTMX_STOP_POLLING)
    ctx["form"] = _form(dep, policy=ctx["policy"])
    ctx["retrain_form"] = RetrainNowForm()
    return render(request, "training/retraining/policy.html", ctx)


@require_POST
@project_view("retraining.configure")
def retraining_policy_save(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="retraining.configure")
    ctx = _policy_ctx(request, project, dep)
    form = _form(dep, request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            retraining_services.retraining_policy_save(
                deployment=dep, actor=request.user, triggers=form.triggers(), enabled=d["enabled"],
                cooldown_minutes=d["cooldown_minutes"], max_firings=d["max_firings"],
                max_firings_period_hours=d["max_firings_period_hours"], min_new_labels=d["min_new_labels"],
                training_window_days=d["training_window_days"], holdout_fraction=d["holdout_fraction"],
                note=d["note"])
            return redirect("training:retraining-policy", project=project.slug, deployment=dep.slug)
        except ApplicationError as exc:
            add_domain_error(form, exc)
    ctx.update(form=form, retrain_form=RetrainNowForm())
    return render(request, "training/retraining/policy.html", ctx, status=422)


@require_POST
@project_view("retraining.configure")
def retraining_retrain_now(request, project, deployment):
    dep = deployment_get_for_user(user=request.user, project=project, slug=deployment, action="retraining.configure")
    policy = selectors.retraining_policy_for(deployment=dep)
    form = RetrainNowForm(request.POST)
    error = ""
    if policy is None:
        error = "Save a policy first: \"Retrain now\" follows its training window and guards"
    elif form.is_valid():
        try:
            retraining_services.retraining_retrain_now(policy=policy, actor=request.user, reason=form.cleaned_data["reason"])
        except ApplicationError as exc:
            error = exc.message
    ctx = _policy_ctx(request, project, dep, retrain_error=error)
    if request.htmx:
        return render(request, "training/retraining/_history.html", ctx, status=422 if error else 200)
    if error:
        ctx.update(form=_form(dep, policy=ctx["policy"]), retrain_form=form)
        return render(request, "training/retraining/policy.html", ctx, status=422)
    return redirect("training:retraining-policy", project=project.slug, deployment=dep.slug)

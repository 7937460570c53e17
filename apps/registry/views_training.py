"""Training job pages: start a job from a label file, watch its progress, logs and metrics, cancel it."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from apps.common.errors import ApplicationError
from apps.common.forms import add_domain_error
from apps.projects.access import project_view
from apps.projects.permissions import can

from . import selectors, training
from .forms_training import TrainingJobForm
from .models import VersionStatus
from .models_training import TrainingJob


def _ctx(project, **extra) -> dict:
    return {"project": project, "tab": "registry", **extra}


def _refittable(model):
    return model.versions.filter(status__in=[VersionStatus.READY, VersionStatus.ARCHIVED]).exclude(
        safe_artifact_key="").order_by("-version")


@project_view("model.view")
def training_list(request, project, model):
    model_obj = selectors.registered_model_get(project=project, name=model)
    jobs = TrainingJob.objects.filter(model=model_obj).select_related("job", "parent_version", "result_version",
                                                                      "requested_by")[:100]
    return render(request, "registry/training/list.html", _ctx(
        project, title=f"Training jobs of {model_obj.name}", model=model_obj, jobs=jobs,
        can_train=can(request.user, project, "training.run")))


@project_view("training.run")
def training_create(request, project, model):
    model_obj = selectors.registered_model_get(project=project, name=model)
    versions = list(_refittable(model_obj))
    form = TrainingJobForm(request.POST or None, request.FILES or None, versions=versions)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            d = form.cleaned_data
            try:
                tj = training.training_job_create(
                    model=model_obj, actor=request.user, parent_version=d["parent_version"], labels=d["labels"],
                    labels_filename=d["labels"].name, timestamp_column=d["timestamp_column"],
                    label_column=d["label_column"], window_start=d["window_start"], window_end=d["window_end"],
                    holdout_split_at=d["holdout_split_at"], holdout_fraction=d["holdout_fraction"] or 0.2,
                    note=d["note"])
                return redirect("registry:training-detail", project=project.slug, model=model_obj.name, pk=tj.pk)
            except ApplicationError as exc:
                add_domain_error(form, exc)
        status = 422
    return render(request, "registry/training/create.html", _ctx(
        project, title=f"Train {model_obj.name}", model=model_obj, form=form, versions=versions), status=status)


def _job(project, model, pk) -> TrainingJob:
    model_obj = selectors.registered_model_get(project=project, name=model)
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
        return render(request, "registry/training/_status.html", ctx, status=HTMX_STOP_POLLING if final else 200)
    return render(request, "registry/training/detail.html", ctx)


@require_POST
@project_view("training.run")
def training_cancel(request, project, model, pk):
    tj = _job(project, model, pk)
    error = ""
    try:
        tj = training.training_job_cancel(training_job=tj, actor=request.user)
    except ApplicationError as exc:
        error = exc.message
    ctx = _ctx(project, tj=tj, model=tj.model, metric_rows=_metric_rows(tj), error=error,
               can_train=can(request.user, project, "training.run"))
    if request.htmx:
        return render(request, "registry/training/_status.html", ctx)
    return redirect("registry:training-detail", project=project.slug, model=tj.model.name, pk=tj.pk)

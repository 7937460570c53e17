"""Registry pages: thin views over selectors and services."""

from __future__ import annotations

import markdown
import nh3
from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import FileResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from apps.common.errors import ApplicationError, PayloadTooLarge
from apps.common.forms import add_domain_error
from apps.common.storage import artifact_store
from apps.projects.access import project_view
from apps.projects.permissions import can

from . import compare, selectors, services
from .forms import CompareForm, RegisteredModelForm, VersionUploadForm
from .models import ModelTask, VersionStatus
from .validation import TOLERANCE_TEXT

# The request body may hold the artifact and two data files, each up to UPLOAD_MAX_BYTES.
BODY_SLACK = 1024 * 1024


def request_body_limit() -> int:
    return 3 * settings.UPLOAD_MAX_BYTES + BODY_SLACK


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Streams each file to a temporary file and stops as soon as one exceeds the upload limit."""

    def __init__(self, *args, limit: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.limit = limit
        self.received = 0

    def new_file(self, *args, **kwargs):
        self.received = 0
        return super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            label = {"artifact": "artifact", "holdout": "holdout file"}.get(self.field_name, self.field_name)
            raise PayloadTooLarge(f"The {label} is larger than the limit of {self.limit:,} bytes",
                                  field=self.field_name)
        return super().receive_data_chunk(raw_data, start)


def limit_upload(request) -> None:
    """Refuse oversize bodies before parsing; stream files with a per-file size limit."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > request_body_limit():
        raise PayloadTooLarge(f"The upload is {length:,} bytes; each file may be at most "
                              f"{settings.UPLOAD_MAX_BYTES:,} bytes", field="artifact")
    try:
        request.upload_handlers = [LimitedUploadHandler(request, limit=settings.UPLOAD_MAX_BYTES)]
    except AttributeError:  # the body was already parsed (e.g. by a CSRF check): put_stream still limits
        pass


def render_model_card(text: str) -> str:
    html = markdown.markdown(text or "", extensions=["extra", "sane_lists"])
    return mark_safe(nh3.clean(html, link_rel="noopener noreferrer nofollow"))  # noqa: S308 - sanitised by nh3


def _ctx(project, **extra) -> dict:
    return {"project": project, "tab": "registry", **extra}


@project_view("model.view")
def model_list(request, project):
    search = request.GET.get("q", "")[:100]
    task = request.GET.get("task", "")
    models = selectors.registered_model_list(project=project, search=search, task=task if task in ModelTask.values else "")
    return render(request, "registry/model_list.html", _ctx(
        project, title="Models", models=models, search=search, task=task, tasks=ModelTask.choices,
        can_upload=can(request.user, project, "model.upload")))


@project_view("model.upload")
def model_create(request, project):
    form = RegisteredModelForm(request.POST or None, project=project)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                model = services.registered_model_create(
                    project=project, actor=request.user, name=form.cleaned_data["name"],
                    task=form.cleaned_data["task"],
                    input_contract=("infer" if form.cleaned_data["infer_contract"]
                                    else form.cleaned_data["input_contract"]),
                    description=form.cleaned_data["description"], feature_set=form.cleaned_data["feature_set"])
                return redirect("registry:model-detail", project=project.slug, model=model.name)
            except ApplicationError as exc:
                add_domain_error(form, exc)
        status = 422
    return render(request, "registry/model_form.html", _ctx(project, title="New model", form=form), status=status)


@project_view("model.view")
def model_detail(request, project, model):
    model_obj = selectors.registered_model_get(project=project, name=model)
    versions = list(selectors.model_version_list(model=model_obj))
    return render(request, "registry/model_detail.html", _ctx(
        project, title=model_obj.name, model=model_obj, versions=versions,
        can_upload=can(request.user, project, "model.upload")))


@csrf_exempt  # the CSRF check runs in _upload_post, after the size-limited upload handler is installed
@project_view("model.upload")
def version_upload(request, project, model):
    model_obj = selectors.registered_model_get(project=project, name=model)
    if request.method == "POST":
        try:
            limit_upload(request)
        except PayloadTooLarge as exc:
            return _upload_form(request, project, model_obj, VersionUploadForm(), status=413, error=exc.message)
        return _upload_post(request, project, model_obj)
    return _upload_form(request, project, model_obj, VersionUploadForm())


@csrf_exempt  # the CSRF check runs in _contract_preview_post, after the size-limited upload handler is installed
@require_POST
@project_view("model.upload")
def contract_preview(request, project, model):
    """The upload form's htmx preview of a data file (files only; never the model): the contract it gives
    when the model's contract is to be inferred, else the file checked against the declared contract."""
    model_obj = selectors.registered_model_get(project=project, name=model)
    try:
        limit_upload(request)
    except PayloadTooLarge as exc:
        return _preview(request, model_obj, error=exc.message, status=413)
    return _contract_preview_post(request, model_obj)


@csrf_protect
def _contract_preview_post(request, model_obj):
    try:
        if not (request.FILES.get("holdout") or request.FILES.get("training_data")):
            return _preview(request, model_obj)  # the file was unchosen: back to the empty state
        preview = selectors.contract_preview_for_upload(
            model=model_obj, actor=request.user, holdout=request.FILES.get("holdout"),
            training_data=request.FILES.get("training_data"), holdout_target=request.POST.get("holdout_target", ""),
            null_values=request.POST.get("null_values", ""))
    except PayloadTooLarge as exc:
        return _preview(request, model_obj, error=exc.message, status=413)
    except ApplicationError as exc:
        return _preview(request, model_obj, error=exc.message, status=422)
    return _preview(request, model_obj, preview=preview)


def _preview(request, model_obj, *, preview=None, error="", status=200):
    return render(request, "registry/_contract_preview.html", {"model": model_obj, "preview": preview,
                                                               "preview_error": error}, status=status)


def _upload_form(request, project, model_obj, form, status=200, error=""):
    return render(request, "registry/version_upload.html", _ctx(
        project, title=f"Upload a version of {model_obj.name}", model=model_obj, form=form, error=error,
        max_mb=settings.UPLOAD_MAX_BYTES // (1024 * 1024)), status=status)


@csrf_protect
def _upload_post(request, project, model_obj):
    try:
        form = VersionUploadForm(request.POST, request.FILES)
        valid = form.is_valid()
    except PayloadTooLarge as exc:
        return _upload_form(request, project, model_obj, VersionUploadForm(), status=413, error=exc.message)
    if valid:
        data = form.cleaned_data
        try:
            version = services.model_version_upload(
                model=model_obj, actor=request.user, artifact=data["artifact"], filename=data["artifact"].name,
                holdout=data.get("holdout"), holdout_target=data.get("holdout_target") or "target",
                training_data=data.get("training_data"), null_values=data.get("null_values"),
                uploader_metrics=data.get("uploader_metrics"),
                tags=data.get("tags"), model_card=data.get("model_card") or "", code_ref=data.get("code_ref") or "",
                parent_version=data.get("parent_version"))
            return redirect("registry:version-detail", project=project.slug, model=model_obj.name,
                            version=version.version)
        except ApplicationError as exc:
            add_domain_error(form, exc)
            return _upload_form(request, project, model_obj, form, status=exc.status_code
                                if exc.status_code in (413, 415) else 422)
    return _upload_form(request, project, model_obj, form, status=422)


def _version(project, model, version):
    model_obj = selectors.registered_model_get(project=project, name=model)
    return model_obj, selectors.model_version_get(model=model_obj, version=version)


@project_view("model.view")
def version_detail(request, project, model, version):
    model_obj, v = _version(project, model, version)
    report = v.validation_report or {}
    return render(request, "registry/version_detail.html", _ctx(
        project, title=f"{model_obj.name} v{v.version}", model=model_obj, v=v,
        lineage=selectors.model_version_lineage(version=v), card_html=render_model_card(v.model_card),
        report=report, tolerance=TOLERANCE_TEXT,
        features=[(name, _with_dates(p)) for name, p in (v.reference_profile or {}).get("features", {}).items()],
        prediction_profile=(v.reference_profile or {}).get("prediction"),
        can_download=can(request.user, project, "model.download") and v.status != VersionStatus.REJECTED,
        can_archive=can(request.user, project, "model.archive"),
        others=[o for o in model_obj.versions.exclude(pk=v.pk).order_by("-version")[:20]]))


def _with_dates(entry: dict) -> dict:
    """A datetime feature's profile (seconds since 1970 UTC) with its figures as date-times for the page."""
    if entry.get("type") != "datetime" or entry.get("mean") is None:
        return entry
    from datetime import UTC, datetime

    q = entry.get("quantiles") or []

    def at(seconds):
        return datetime.fromtimestamp(seconds, UTC)

    return {**entry, "as_dates": {"mean": at(entry["mean"]), "min": at(entry["min"]), "max": at(entry["max"]),
                                  "median": at(q[len(q) // 2]) if q else None,
                                  "std_days": (entry.get("std") or 0.0) / 86400}}


@project_view("model.view")
def version_status(request, project, model, version):
    _model_obj, v = _version(project, model, version)
    response = render(request, "registry/_version_status.html", {"project": project, "v": v})
    if request.htmx and v.status != VersionStatus.VALIDATING:
        response["HX-Refresh"] = "true"
    return response


@project_view("model.download")
def version_download(request, project, model, version):
    model_obj, v = _version(project, model, version)
    services.model_version_download_check(version=v, actor=request.user)
    ext = {"joblib": "joblib", "pickle": "pkl", "skops": "skops", "onnx": "onnx"}[v.artifact_format]
    response = FileResponse(artifact_store().open(v.artifact_key), as_attachment=True,
                            filename=f"{model_obj.name}-v{v.version}.{ext}", content_type="application/octet-stream")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@require_POST
@project_view("model.archive")
def version_archive(request, project, model, version):
    _model_obj, v = _version(project, model, version)
    services.model_version_archive(version=v, actor=request.user, archived=request.POST.get("archived", "1") == "1")
    return redirect("registry:version-detail", project=project.slug, model=model, version=version)


@project_view("model.view")
def version_compare(request, project, model):
    model_obj = selectors.registered_model_get(project=project, name=model)
    form = CompareForm(request.GET or None)
    a_num = b_num = None
    if form.is_valid():
        a_num, b_num = form.cleaned_data.get("a"), form.cleaned_data.get("b")
    a, b = selectors.model_versions_for_compare(model=model_obj, a=a_num, b=b_num)
    la, lb = f"v{a.version}", f"v{b.version}"
    diffs = compare.profile_differences(a.reference_profile, b.reference_profile)
    feature = (form.cleaned_data.get("feature") if form.is_valid() else "") or ""
    ranked = sorted([d for d in diffs if d["ks"] is not None], key=lambda d: -d["ks"])
    if not feature and (ranked or diffs):
        feature = (ranked or diffs)[0]["name"]
    ctx = _ctx(project, title=f"Compare {model_obj.name} {la} and {lb}", model=model_obj, a=a, b=b,
               versions=list(model_obj.versions.order_by("-version")), feature=feature,
               metrics_fig=compare.metrics_figure(la, a.metrics or {}, lb, b.metrics or {}),
               metric_rows=_metric_rows(a.metrics or {}, b.metrics or {}),
               params=compare.param_diff(a.params or {}, b.params or {}), diffs=diffs,
               profile_fig=compare.profile_figure(la, a.reference_profile, lb, b.reference_profile, feature)
               if feature else None)
    if request.htmx and request.GET.get("fragment") == "profile":
        return render(request, "registry/_profile_chart.html", ctx)
    return render(request, "registry/version_compare.html", ctx)


def _metric_rows(ma: dict, mb: dict) -> list[dict]:
    rows = []
    for key in sorted(set(ma) | set(mb)):
        va, vb = ma.get(key), mb.get(key)
        delta = (vb - va) if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
        rows.append({"name": key, "a": va, "b": vb, "delta": delta})
    return rows

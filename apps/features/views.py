from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING

from apps.common.errors import ApplicationError
from apps.common.forms import add_domain_error
from apps.common.storage import artifact_store
from apps.projects.access import project_view
from apps.projects.permissions import can

from . import selectors, services
from .forms import (
    CatalogFilterForm,
    EntityForm,
    FeatureSetForm,
    FeatureViewForm,
    SourceUploadForm,
    TrainingSetForm,
)
from .online import stale_view_ids


def _ctx(request, project, **extra) -> dict:
    return {"project": project, "tab": "features", "can_edit": can(request.user, project, "feature.edit"),
            "can_build": can(request.user, project, "trainingset.build"), **extra}


@project_view("feature.view")
def catalog(request, project):
    owners = get_user_model().objects.filter(pk__in=project.feature_views.values("owner")).values_list("username", flat=True)
    form = CatalogFilterForm(request.GET or None, entities=selectors.entity_list(project=project).values_list("name", flat=True),
                             owners=owners, tags=selectors.feature_view_tags(project=project))
    filters = form.cleaned_data if form.is_valid() else {}
    views = list(selectors.feature_view_list(project=project, search=filters.get("q", ""),
                                             entity=filters.get("entity", ""), owner=filters.get("owner", ""),
                                             mode=filters.get("mode", ""), tag=filters.get("tag", "")))
    for v in views:
        v.freshness = services.feature_view_freshness(view=v)
    ctx = _ctx(request, project, form=form, views=views, filtered=bool(filters and any(filters.values())))
    if request.htmx:
        return render(request, "features/_catalog_table.html", ctx)
    ctx.update(entities=selectors.entity_list(project=project), sources=selectors.data_source_list(project=project),
               feature_sets=selectors.feature_set_list(project=project),
               training_sets=selectors.training_set_list(project=project)[:10])
    return render(request, "features/catalog.html", ctx)


@project_view("feature.edit")
@require_http_methods(["GET", "POST"])
def entity_create(request, project):
    form = EntityForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            entity = services.entity_create(project=project, actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Entity “{entity.name}” created.")
            return redirect("features:catalog", project=project.slug)
    return render(request, "features/form_page.html",
                  _ctx(request, project, form=form, title="New entity", submit="Create entity"),
                  status=422 if form.errors else 200)


@project_view("feature.edit")
@require_http_methods(["GET", "POST"])
def source_upload(request, project):
    form = SourceUploadForm(request.POST or None, request.FILES or None, initial={"name": request.GET.get("name", "")})
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        data = form.cleaned_data
        try:
            version, job = services.data_source_upload_request(
                project=project, actor=request.user, name=data["name"], upload=upload, filename=upload.name,
                description=data["description"], column_types=data["column_types"], null_values=data["null_values"])
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            if job is not None:  # large or wide: read in the background; the page follows the job's progress
                return render(request, "features/form_page.html",
                              _ctx(request, project, form=SourceUploadForm(initial={"name": data["name"]}), job=job,
                                   title="Upload a data source", submit="Upload", multipart=True), status=202)
            messages.success(request, f"Uploaded {version}: {version.row_count:,} rows.")
            return redirect("features:source-detail", project=project.slug, name=version.source.name)
    return render(request, "features/form_page.html",
                  _ctx(request, project, form=form, title="Upload a data source", submit="Upload", multipart=True),
                  status=422 if form.errors else 200)


@project_view("feature.view")
def source_detail(request, project, name: str):
    source = selectors.data_source_get(project=project, name=name)
    version = source.latest_version
    figures = _figures(version.stats if version else {}, "src")
    return render(request, "features/source_detail.html",
                  _ctx(request, project, source=source, version=version, versions=source.versions.all(),
                       figures=figures, views=source.views.filter(is_current=True)))


def _view_form_initial(view) -> dict:
    return {"entity": view.entity.name, "source": view.source.name, "entity_column": view.entity_column,
            "timestamp_column": view.timestamp_column, "written_at_column": view.written_at_column,
            "features": "\n".join(f"{f.name}: {f.description}" if f.description else f.name for f in view.features.all()),
            "availability_lag": services.format_duration(view.availability_lag).replace(" ", ""),
            "ttl": services.format_duration(view.ttl).replace(" ", "").replace("—", ""), "online": view.online,
            "materialize_every": services.format_duration(view.materialize_every).replace(" ", "").replace("—", ""),
            "freshness_sla": services.format_duration(view.freshness_sla).replace(" ", "").replace("—", ""),
            "owner": view.owner.username if view.owner else "", "tags": ", ".join(view.tags),
            "description": view.description}


@project_view("feature.edit")
@require_http_methods(["GET", "POST"])
def view_create(request, project):
    form = FeatureViewForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        try:
            view = services.feature_view_create(project=project, actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Feature view “{view.name}” created.")
            return redirect("features:view-detail", project=project.slug, name=view.name)
    return render(request, "features/view_form.html",
                  _ctx(request, project, form=form, title="New feature view", submit="Create view",
                       sources=selectors.data_source_list(project=project)),
                  status=422 if form.errors else 200)


@project_view("feature.edit")
@require_http_methods(["GET", "POST"])
def view_edit(request, project, name: str):
    view = selectors.feature_view_get(project=project, name=name)
    used = services.feature_view_is_used(view=view)
    form = FeatureViewForm(request.POST or None, project=project, edit=True, initial=_view_form_initial(view))
    if request.method == "POST" and form.is_valid():
        try:
            new = services.feature_view_update(view=view, actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Saved as version {new.version}." if new.pk != view.pk else "Saved.")
            return redirect("features:view-detail", project=project.slug, name=new.name)
    return render(request, "features/view_form.html",
                  _ctx(request, project, form=form, title=f"Edit {view}", submit="Save", view=view, used=used,
                       sources=selectors.data_source_list(project=project)),
                  status=422 if form.errors else 200)


@project_view("feature.view")
def view_detail(request, project, name: str):
    version = request.GET.get("version")
    view = selectors.feature_view_get(project=project, name=name, version=int(version) if version and version.isdigit() else None)
    src_version = view.source.latest_version
    stats = (src_version.stats or {}) if src_version else {}
    features = list(view.features.all())
    figures = _figures({f.name: stats.get(f.name, {}) for f in features}, "feat")
    job = None
    from apps.projects.models import Job

    job = Job.objects.filter(kind="features.materialize", params__view_id=view.pk).order_by("-created_at").first()
    versions = list(project.feature_views.filter(name=view.name).select_related("materialized_source_version__source")
                    .order_by("-version"))
    stale = stale_view_ids([v.pk for v in versions if v.online])
    for v in versions:
        v.online_stale = v.pk in stale  # the lookup answers its features "stale" until it is re-materialized
    return render(request, "features/view_detail.html", _ctx(
        request, project, view=view, features=[(f, stats.get(f.name, {})) for f in features], figures=figures,
        freshness=services.feature_view_freshness(view=view), usage=selectors.feature_view_usage(view=view),
        versions=versions, source_version=src_version, key_problem=services.view_key_problem(view, src_version),
        job=job, lag=services.format_duration(view.availability_lag), ttl=services.format_duration(view.ttl),
        sla=services.format_duration(view.freshness_sla), schedule=services.format_duration(view.materialize_every)))


@project_view("feature.edit")
@require_POST
def view_materialize(request, project, name: str):
    view = selectors.feature_view_get(project=project, name=name)
    job = services.feature_view_materialize_request(view=view, actor=request.user)
    if request.htmx:
        return render(request, "common/_job_status.html", {"job": job})
    messages.success(request, "Materialization started.")
    return redirect("features:view-detail", project=project.slug, name=name)


@project_view("feature.edit")
@require_http_methods(["GET", "POST"])
def feature_set_create(request, project):
    form = FeatureSetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            fs = services.feature_set_create(project=project, actor=request.user, name=form.cleaned_data["name"],
                                             references=form.cleaned_data["features"],
                                             description=form.cleaned_data["description"])
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Feature set “{fs.name}” created.")
            return redirect("features:featureset-detail", project=project.slug, name=fs.name)
    refs = [f"{v.name}:{f.name}" for v in selectors.feature_view_list(project=project) for f in v.features.all()]
    return render(request, "features/form_page.html",
                  _ctx(request, project, form=form, title="New feature set", submit="Create feature set", refs=refs),
                  status=422 if form.errors else 200)


@project_view("feature.view")
def feature_set_detail(request, project, name: str):
    fs = selectors.feature_set_get(project=project, name=name)
    return render(request, "features/featureset_detail.html", _ctx(
        request, project, fs=fs, items=list(fs.ordered_items), usage=services.feature_set_usage(feature_set=fs),
        training_sets=fs.training_sets.all()))


@project_view("trainingset.build")
@require_http_methods(["GET", "POST"])
def training_set_create(request, project):
    form = TrainingSetForm(request.POST or None, request.FILES or None, project=project,
                           initial={"feature_set": request.GET.get("feature_set", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            ts = services.training_set_request(project=project, actor=request.user, name=data["name"],
                                               feature_set=data["feature_set"], labels_upload=data["labels"],
                                               labels_filename=data["labels"].name,
                                               timestamp_column=data["timestamp_column"], description=data["description"],
                                               null_values=data["null_values"])
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            return redirect("features:trainingset-detail", project=project.slug, name=ts.name)
    return render(request, "features/form_page.html",
                  _ctx(request, project, form=form, title="Build a training set", submit="Build training set",
                       multipart=True), status=422 if form.errors else 200)


@project_view("feature.view")
def training_set_detail(request, project, name: str):
    ts = selectors.training_set_get(project=project, name=name)
    final = ts.status in ("ready", "failed")
    ctx = _ctx(request, project, ts=ts, job=ts.job, final=final, figures=_figures(ts.stats or {}, "ts") if final else [],
               leakage_rows=_leakage_rows(ts), source_versions=ts.source_versions.select_related("source"),
               models=selectors.training_set_models(training_set=ts))
    if request.htmx:
        return render(request, "features/_trainingset_report.html", ctx, status=HTMX_STOP_POLLING if final else 200)
    return render(request, "features/trainingset_detail.html", ctx)


@project_view("feature.view")
def training_set_download(request, project, name: str):
    ts = selectors.training_set_get(project=project, name=name)
    if not ts.is_ready:
        raise Http404("Not built yet")
    return FileResponse(artifact_store().open(ts.artifact_key), as_attachment=True, filename=f"{ts.name}.parquet")


def _figures(stats: dict, prefix: str) -> list[dict]:
    out = []
    for i, (name, st) in enumerate(stats.items()):
        fig = selectors.histogram_figure(name, st or {})
        if fig:
            out.append({"id": f"fig-{prefix}-{i}", "name": name, "figure": fig})
    return out


def _leakage_rows(ts) -> list[dict]:
    rows = []
    n = max(ts.row_count, 1)
    for feature, info in (ts.leakage or {}).get("features", {}).items():
        rows.append({"feature": feature, **info, "null_rate": (ts.null_rates or {}).get(feature),
                     "total": info["latest_from_future"] + info["latest_before_available"],
                     "share": (info["latest_from_future"] + info["latest_before_available"]) / n})
    return rows

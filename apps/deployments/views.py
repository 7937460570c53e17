import json

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from apps.common.errors import ApplicationError
from apps.common.forms import add_domain_error
from apps.projects.access import project_view, public_view
from apps.projects.permissions import can

from . import selectors, services, serving
from .forms import ApiKeyForm, DeploymentForm, OwnerForm, PauseForm, VersionForm
from .models import DeploymentApiKey

PAGE = 20


def _members(project):
    return get_user_model().objects.filter(memberships__project=project).order_by("username")


@project_view("deployment.view")
def deployment_list(request, project):
    return render(request, "deployments/deployment_list.html", {
        "project": project, "tab": "deployments", "title": "Deployments",
        "deployments": selectors.deployment_list_for_project(project=project),
        "can_manage": can(request.user, project, "deployment.manage"),
    })


@project_view("deployment.manage")
@require_http_methods(["GET", "POST"])
def deployment_create_view(request, project):
    versions = selectors.deployable_versions(project=project)
    form = DeploymentForm(request.POST or None, versions=versions, members=_members(project),
                          initial={"owner": request.user, "version": request.GET.get("version")})
    if request.method == "POST" and form.is_valid():
        try:
            dep = services.deployment_create(project=project, actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            return redirect("deployments:deployment-detail", project=project.slug, deployment=dep.slug)
    return render(request, "deployments/deployment_form.html", {
        "project": project, "tab": "deployments", "title": "New deployment", "form": form,
        "has_versions": versions.exists()}, status=422 if form.errors else 200)


def _example_instance(dep) -> dict:
    if dep.input_mode == "entity":
        return {"entities": ["<entity key>"]}
    values = {"f": 0.0, "i": 0, "b": False, "s": "text", "d": "2026-01-01T00:00:00Z"}
    contract = serving.C.Contract.from_spec(dep.registered_model.input_contract or [])
    profile = (dep.production_version.reference_profile or {}).get("features", {})
    row = {}
    for c, (name, kind) in enumerate(zip(contract.names, contract.kinds, strict=True)):
        example = values[kind]
        stat = profile.get(name) if isinstance(profile, dict) else None
        known = contract.categories[c] if contract.categories else None
        if kind == "f" and isinstance(stat, dict) and isinstance(stat.get("mean"), (int, float)):
            example = round(float(stat["mean"]), 4)
        elif known:
            example = sorted(known, key=str)[0]
        elif kind == "s" and isinstance(stat, dict) and stat.get("frequencies"):
            example = max(stat["frequencies"], key=stat["frequencies"].get)
        row[name] = example
    return {"instances": [row]}


def curl_example(request, dep, key: str = "$SLIPWAY_API_KEY") -> str:
    url = request.build_absolute_uri(f"/api/v1/deployments/{dep.slug}/predict")
    body = json.dumps(_example_instance(dep))
    return (f"curl -sS -X POST '{url}' \\\n  -H 'Authorization: Bearer {key}' \\\n"
            f"  -H 'Content-Type: application/json' \\\n  -d '{body}'")


def outcomes_curl_example(request, dep) -> str:
    """Posting ground truth later: a personal token (slw_…), never the deployment key."""
    url = request.build_absolute_uri(f"/api/v1/deployments/{dep.slug}/outcomes")
    return (f"curl -sS -X POST '{url}' \\\n  -H 'Authorization: Bearer $SLIPWAY_TOKEN' \\\n"
            f"  -H 'Content-Type: application/json' \\\n"
            f"  -d '{{\"outcomes\": [{{\"request_id\": \"<request_id from /predict>\", \"label\": 1}}]}}'")


def _detail_context(request, project, dep, **extra) -> dict:
    return {
        "project": project, "tab": "deployments", "title": dep.name, "deployment": dep,
        "charts": selectors.deployment_charts(deployment=dep),
        "events": selectors.deployment_events(deployment=dep)[:12],
        "curl": curl_example(request, dep),
        "outcomes_curl": outcomes_curl_example(request, dep),
        "can_manage": can(request.user, project, "deployment.manage"),
        "can_keys": can(request.user, project, "deployment.keys"),
        "version_form": VersionForm(versions=selectors.deployable_versions(project=project)
                                    .filter(model=dep.registered_model).exclude(pk=dep.production_version_id),
                                    auto_id="id_switch_%s"),
        "owner_form": OwnerForm(members=_members(project), initial={"owner": dep.owner_id}, auto_id="id_owner_%s"),
        "pause_form": PauseForm(auto_id="id_pause_%s"),
        **_keys_context(request, dep),
        **_predictions_context(dep, 0),
        **extra,
    }


@project_view("deployment.view")
def deployment_detail(request, project, deployment):
    dep = selectors.deployment_get_for_user(user=request.user, project=project, slug=deployment)
    return render(request, "deployments/deployment_detail.html", _detail_context(request, project, dep))


def _predictions_context(dep, offset: int) -> dict:
    offset = max(0, offset)
    rows = list(selectors.prediction_log_for_deployment(deployment=dep)
                .select_related("version")[offset:offset + PAGE + 1])
    return {"predictions": rows[:PAGE], "pred_offset": offset, "pred_has_more": len(rows) > PAGE,
            "pred_newer": max(0, offset - PAGE), "pred_older": offset + PAGE}


@project_view("deployment.view")
def deployment_predictions(request, project, deployment):
    dep = selectors.deployment_get_for_user(user=request.user, project=project, slug=deployment)
    try:
        offset = int(request.GET.get("offset", 0))
    except ValueError:
        offset = 0
    ctx = {"project": project, "deployment": dep, **_predictions_context(dep, offset)}
    return render(request, "deployments/_predictions.html", ctx)


@project_view("deployment.view")
def deployment_charts_view(request, project, deployment):
    dep = selectors.deployment_get_for_user(user=request.user, project=project, slug=deployment)
    return render(request, "deployments/_charts.html", {"project": project, "deployment": dep,
                                                        "charts": selectors.deployment_charts(deployment=dep)})


def _action(request, project, deployment, fn):
    dep = selectors.deployment_get_for_user(user=request.user, project=project, slug=deployment)
    try:
        fn(dep)
    except ApplicationError as exc:
        from django.contrib import messages

        messages.error(request, exc.message)
    return redirect("deployments:deployment-detail", project=project.slug, deployment=dep.slug)


@project_view("deployment.manage")
@require_POST
def deployment_pause_view(request, project, deployment):
    form = PauseForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    return _action(request, project, deployment,
                   lambda dep: services.deployment_pause(deployment=dep, actor=request.user, reason=reason))


@project_view("deployment.manage")
@require_POST
def deployment_resume_view(request, project, deployment):
    return _action(request, project, deployment,
                   lambda dep: services.deployment_resume(deployment=dep, actor=request.user))


@project_view("deployment.manage")
@require_POST
def deployment_version_view(request, project, deployment):
    def switch(dep):
        form = VersionForm(request.POST, versions=selectors.deployable_versions(project=project)
                           .filter(model=dep.registered_model))
        if not form.is_valid():
            raise services.InvalidInput("Choose a ready version of this model")
        services.deployment_version_set(deployment=dep, actor=request.user, **form.cleaned_data)

    return _action(request, project, deployment, switch)


@project_view("deployment.manage")
@require_POST
def deployment_owner_view(request, project, deployment):
    def change(dep):
        form = OwnerForm(request.POST, members=_members(project))
        if not form.is_valid():
            raise services.InvalidInput("Choose a member of the project")
        services.deployment_owner_set(deployment=dep, actor=request.user, owner=form.cleaned_data["owner"])

    return _action(request, project, deployment, change)


def _keys_context(request, dep, form=None, created=None) -> dict:
    return {"keys": selectors.api_key_list(deployment=dep), "key_form": form or ApiKeyForm(),
            "created_key": created,
            "created_curl": curl_example(request, dep, created) if created else ""}


@project_view("deployment.keys")
@require_POST
def api_key_create_view(request, project, deployment):
    dep = selectors.deployment_get_for_user(user=request.user, project=project, slug=deployment)
    form = ApiKeyForm(request.POST)
    created = None
    if form.is_valid():
        try:
            _, created = services.deployment_api_key_create(deployment=dep, actor=request.user,
                                                            name=form.cleaned_data["name"])
        except ApplicationError as exc:
            add_domain_error(form, exc)
    ctx = {"project": project, "deployment": dep, "can_keys": True,
           **_keys_context(request, dep, form if form.errors else None, created)}
    return render(request, "deployments/_keys.html", ctx, status=422 if form.errors else 200)


@project_view("deployment.keys")
@require_POST
def api_key_revoke_view(request, project, deployment, key_id):
    dep = selectors.deployment_get_for_user(user=request.user, project=project, slug=deployment)
    key = get_object_or_404(DeploymentApiKey, pk=key_id, deployment=dep)
    try:
        services.deployment_api_key_revoke(key=key, actor=request.user)
    except ApplicationError:
        pass  # already revoked: the fragment shows it
    ctx = {"project": project, "deployment": dep, "can_keys": True, **_keys_context(request, dep)}
    return render(request, "deployments/_keys.html", ctx)


# --- the prediction endpoint as a Django view (the WSGI dispatcher answers it first in production) --


@public_view
@csrf_exempt
def predict_view(request, slug):
    from django.http import HttpResponse

    if request.method != "POST":
        resp = HttpResponse(b'{"detail":"Use POST for predictions","errors":[]}', status=405,
                            content_type="application/json")
        resp["Allow"] = "POST"
        return resp
    length = request.META.get("CONTENT_LENGTH") or ""
    req = serving.Request(
        slug=slug, content_type=request.META.get("CONTENT_TYPE", ""),
        content_length=int(length) if length.isdigit() else None,
        authorization=request.META.get("HTTP_AUTHORIZATION", ""), api_key=request.META.get("HTTP_X_API_KEY", ""),
        read=request.read, request_id=serving.request_id_from(request.META.get("HTTP_X_REQUEST_ID", "")))
    out = serving.predict(req)
    resp = HttpResponse(out.body, status=out.status, content_type="application/json")
    resp["X-Request-ID"] = out.request_id
    if out.retry_after is not None:
        resp["Retry-After"] = str(out.retry_after)
    return resp


@public_view
def healthz_view(request):
    """Readiness: 200 only when the built-in probe deployment answers through the real prediction path
    (the same check as the WSGI dispatcher's /healthz under gunicorn)."""
    from django.http import JsonResponse

    status, body = serving.readiness()
    resp = JsonResponse(body, status=status)
    resp["Cache-Control"] = "no-store"
    return resp


@public_view
def metrics_view(request):
    from django.conf import settings
    from django.http import HttpResponse
    from prometheus_client import CONTENT_TYPE_LATEST

    from . import metrics

    if settings.METRICS_TOKEN and request.META.get("HTTP_AUTHORIZATION", "") != f"Bearer {settings.METRICS_TOKEN}":
        return HttpResponse(b"unauthorized\n", status=401, content_type="text/plain")
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)


def deployment_url(dep) -> str:
    return reverse("deployments:deployment-detail", kwargs={"project": dep.project.slug, "deployment": dep.slug})

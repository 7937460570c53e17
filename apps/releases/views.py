"""Pages of shadow runs and promotion: thin — parse, call one service, render (fragments for htmx)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING

from apps.common.errors import ApplicationError, NotFound
from apps.common.forms import add_domain_error
from apps.common.htmx import render_job_status
from apps.deployments import selectors
from apps.deployments.models import Canary
from apps.deployments.services import deployment_never_live
from apps.projects.access import project_view, user_view
from apps.projects.permissions import can

from . import charts as shadow_charts
from . import selectors as release_selectors
from .forms import (
    CanaryForm,
    PolicyForm,
    PromotionRequestForm,
    ReviewForm,
    RollbackForm,
    ShadowStartForm,
)
from .models import ShadowRun
from .policy import promotion_policy
from .services import promotion, rollout, shadow


def _dep(request, project, deployment: str, action: str = "deployment.view"):
    return selectors.deployment_get_for_user(user=request.user, project=project, slug=deployment, action=action)


def _candidates(dep):
    return (selectors.deployable_versions(project=dep.project).filter(model=dep.registered_model)
            .exclude(pk=dep.production_version_id))


def _run(dep, run_id: int) -> ShadowRun:
    run = dep.shadow_runs.select_related("candidate__model", "started_by").filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"No shadow run #{run_id} on {dep.slug}")
    return run


def _ctx(project, dep, title: str, **extra) -> dict:
    return {"project": project, "tab": "deployments", "deployment": dep, "title": title, **extra}


# --- shadow runs ---------------------------------------------------------------------------------


@project_view("deployment.view")
@require_http_methods(["GET", "POST"])
def shadow_list(request, project, deployment):
    dep = _dep(request, project, deployment)
    form = ShadowStartForm(request.POST or None, candidates=_candidates(dep))
    if request.method == "POST" and form.is_valid():
        try:
            run = shadow.shadow_run_start(deployment=dep, actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            return redirect("releases:shadow-detail", project=project.slug, deployment=dep.slug, run_id=run.pk)
    return render(request, "releases/shadow_list.html", _ctx(
        project, dep, f"Shadow runs · {dep.slug}", form=form, runs=dep.shadow_runs.select_related("candidate__model"),
        can_manage=can(request.user, project, "shadow.manage")), status=422 if form.errors else 200)


@project_view("deployment.view")
def shadow_detail(request, project, deployment, run_id: int):
    dep = _dep(request, project, deployment)
    run = _run(dep, run_id)
    ctx = _ctx(project, dep, f"Shadow of {run.candidate} · {dep.slug}", run=run,
               figures=shadow_charts.comparison_figures(run.comparison, run.candidate.model.task),
               policy=promotion_policy(project), can_manage=can(request.user, project, "shadow.manage"),
               can_request=can(request.user, project, "promotion.request"))
    if request.htmx:
        status = 200 if run.is_active else HTMX_STOP_POLLING
        return render(request, "releases/_shadow_comparison.html", ctx, status=status)
    return render(request, "releases/shadow_detail.html", ctx)


@project_view("shadow.manage")
@require_POST
def shadow_stop(request, project, deployment, run_id: int):
    dep = _dep(request, project, deployment, "shadow.manage")
    try:
        shadow.shadow_run_stop(run=_run(dep, run_id), actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("releases:shadow-detail", project=project.slug, deployment=dep.slug, run_id=run_id)


@project_view("shadow.manage")
@require_POST
def shadow_resume(request, project, deployment, run_id: int):
    dep = _dep(request, project, deployment, "shadow.manage")
    try:
        shadow.shadow_run_resume(run=_run(dep, run_id), actor=request.user)
        messages.success(request, "Shadow run resumed: it scores on from where it paused.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("releases:shadow-detail", project=project.slug, deployment=dep.slug, run_id=run_id)


@project_view("shadow.manage")
@require_POST
def shadow_score(request, project, deployment, run_id: int):
    dep = _dep(request, project, deployment, "shadow.manage")
    job = shadow.shadow_run_score_request(run=_run(dep, run_id), actor=request.user)
    return render_job_status(request, job)


# --- promotion requests --------------------------------------------------------------------------


@project_view("promotion.request")
@require_http_methods(["GET", "POST"])
def promotion_create(request, project, deployment):
    dep = _dep(request, project, deployment, "promotion.request")
    # a paused deployment that never went live: its own first version is the candidate (offered and chosen)
    first = deployment_never_live(dep)
    candidates = (selectors.deployable_versions(project=dep.project).filter(model=dep.registered_model) if first
                  else _candidates(dep))
    form = PromotionRequestForm(request.POST or None, candidates=candidates,
                                initial={"candidate": request.GET.get("candidate")
                                         or (dep.production_version_id if first else None)})
    if request.method == "POST" and form.is_valid():
        try:
            req = promotion.promotion_request_open(deployment=dep, actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            return redirect("releases:request-detail", project=project.slug, pk=req.pk)
    return render(request, "releases/request_form.html",
                  _ctx(project, dep, f"Request promotion · {dep.slug}", form=form, policy=promotion_policy(project)),
                  status=422 if form.errors else 200)


@project_view("deployment.view")
def promotion_list(request, project):
    status = request.GET.get("status", "")
    return render(request, "releases/request_list.html", {
        "project": project, "tab": "deployments", "title": "Promotion requests", "status": status,
        "requests": release_selectors.promotion_request_list(project=project, status=status)[:200],
        "policy": promotion_policy(project), "can_edit_policy": can(request.user, project, "project.edit")})


@user_view
def promotion_inbox(request):
    return render(request, "releases/inbox.html", {
        "title": "Review inbox", "requests": release_selectors.promotion_inbox_for_user(user=request.user)})


def _review_ctx(request, req, form=None) -> dict:
    may_review = (can(request.user, req.project, "promotion.review") and req.requested_by_id != request.user.pk
                  and req.is_open)
    if form is None:
        form = ReviewForm(initial={"evidence_hash": req.evidence_hash, "artifact_sha256": req.artifact_sha256})
    return {"req": req, "project": req.project, "form": form, "may_review": may_review,
            "own_request": req.requested_by_id == request.user.pk,
            "failing": promotion.failing_gates(req),
            "reviews": req.reviews.select_related("reviewer"),
            "counting": promotion.counting_approvals(req).count()}


@project_view("deployment.view")
def promotion_detail(request, project, pk: int):
    req = release_selectors.promotion_request_get(project=project, pk=pk)
    ev = req.evidence or {}
    shadow_ev = ev.get("shadow") or {}
    figures = shadow_charts.comparison_figures(shadow_ev.get("comparison"), req.candidate.model.task)
    offline = shadow_charts.offline_figure(ev.get("offline"))
    if offline:
        figures = {"offline": offline, **figures}
    ctx = {**_review_ctx(request, req), "tab": "deployments", "title": f"Promotion #{req.pk}", "ev": ev,
           "figures": figures, "deployment": req.deployment,
           "can_refresh": req.is_open and can(request.user, project, "promotion.request"),
           "can_withdraw": req.is_open and (req.requested_by_id == request.user.pk
                                            or can(request.user, project, "project.edit"))}
    return render(request, "releases/request_detail.html", ctx)


@project_view("promotion.review")
@require_POST
def promotion_review(request, project, pk: int):
    req = release_selectors.promotion_request_get(project=project, pk=pk)
    form = ReviewForm(request.POST)
    status = 200
    if form.is_valid():
        try:
            promotion.promotion_request_review(request=req, reviewer=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            req = release_selectors.promotion_request_get(project=project, pk=pk)
            form = None
    if form is not None and form.errors:
        status = 422
    ctx = {**_review_ctx(request, req, form), "oob": True}
    return render(request, "releases/_review_panel.html", ctx, status=status)


@project_view("promotion.request")
@require_POST
def promotion_refresh(request, project, pk: int):
    req = release_selectors.promotion_request_get(project=project, pk=pk)
    try:
        promotion.promotion_request_refresh(request=req, actor=request.user)
        messages.success(request, "Evidence refreshed. Approvals given before no longer count.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("releases:request-detail", project=project.slug, pk=pk)


@project_view("deployment.view")
@require_POST
def promotion_withdraw(request, project, pk: int):
    req = release_selectors.promotion_request_get(project=project, pk=pk)
    try:
        promotion.promotion_request_withdraw(request=req, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("releases:request-detail", project=project.slug, pk=pk)


@project_view("deployment.view")
@require_http_methods(["GET", "POST"])
def deployment_releases(request, project, deployment, canary_form=None):
    """Timeline of every version served and why, shadow runs, promotion requests, rollback and canary."""
    dep = _dep(request, project, deployment)
    form = RollbackForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            rollout.deployment_rollback(deployment=dep, actor=request.user, reason=form.cleaned_data["reason"])
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, "Rolled back: every serving process switches within about a second.")
            return redirect("releases:deployment-releases", project=project.slug, deployment=dep.slug)
    dep.refresh_from_db()
    target = rollout.rollback_target(deployment=dep)
    may_rollback = target is not None and (
        can(request.user, project, "deployment.rollback")
        or (dep.owner_id == request.user.pk and can(request.user, project, "deployment.manage")))
    canary = Canary.objects.select_related("candidate__model").filter(deployment=dep).first()
    return render(request, "releases/releases.html", _ctx(
        project, dep, f"Releases · {dep.slug}", form=form, rollback_to=target, may_rollback=may_rollback,
        canary=canary, canary_form=canary_form or CanaryForm(candidates=_candidates(dep)),
        can_manage=can(request.user, project, "deployment.manage"),
        events=selectors.deployment_events(deployment=dep).filter(kind__in=("deploy", "version", "promote",
                                                                            "rollback", "canary", "shadow"))[:200],
        runs=dep.shadow_runs.select_related("candidate__model")[:20],
        requests=release_selectors.promotion_request_list(project=project, deployment=dep)[:20]),
        status=422 if form.errors else 200)


@project_view("deployment.manage")
@require_POST
def canary_set_view(request, project, deployment):
    dep = _dep(request, project, deployment, "deployment.manage")
    form = CanaryForm(request.POST, candidates=_candidates(dep))
    if form.is_valid():
        try:
            rollout.canary_set(deployment=dep, actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, "Canary set: serving processes pick it up within about a second.")
            return redirect("releases:deployment-releases", project=project.slug, deployment=dep.slug)
    messages.error(request, "The canary was not set: " + "; ".join(e for errs in form.errors.values() for e in errs))
    return redirect("releases:deployment-releases", project=project.slug, deployment=dep.slug)


@project_view("deployment.manage")
@require_POST
def canary_stop_view(request, project, deployment):
    dep = _dep(request, project, deployment, "deployment.manage")
    try:
        rollout.canary_stop(deployment=dep, actor=request.user)
        messages.success(request, "Canary stopped: production answers every request.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("releases:deployment-releases", project=project.slug, deployment=dep.slug)


@project_view("deployment.manage")
@require_POST
def canary_resume_view(request, project, deployment):
    dep = _dep(request, project, deployment, "deployment.manage")
    try:
        rollout.canary_resume(deployment=dep, actor=request.user)
        messages.success(request, "Canary resumed: serving processes pick it up within about a second.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("releases:deployment-releases", project=project.slug, deployment=dep.slug)


@project_view("project.edit")
@require_http_methods(["GET", "POST"])
def promotion_policy_view(request, project):
    form = PolicyForm(request.POST or None, initial=promotion_policy(project).to_dict())
    if request.method == "POST" and form.is_valid():
        try:
            promotion.promotion_policy_update(project=project, actor=request.user, values=form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, "Promotion policy saved.")
            return redirect("releases:request-list", project=project.slug)
    return render(request, "releases/policy.html", {
        "project": project, "tab": "deployments", "title": "Promotion policy", "form": form},
        status=422 if form.errors else 200)

"""Readiness pages: the project's assessment (answers, notes, snapshots) and the managers' portfolio."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from apps.common.errors import ApplicationError
from apps.common.forms import add_domain_error
from apps.projects.access import project_view, user_view
from apps.projects.permissions import can

from . import scoring, selectors, services
from .assess import assessment_compute
from .forms import AnswerForm, PortfolioFilterForm, SnapshotForm


def _assessment_context(request, project, **extra) -> dict:
    a = assessment_compute(project=project)
    snapshots = selectors.snapshot_list(project=project)
    return {"project": project, "tab": "readiness", "title": f"Readiness · {project.name}", "a": a,
            "stages": scoring.STAGES, "stage_help": scoring.STAGE_HELP, "stage_index": scoring.stage_index(a.stage),
            "can_answer": can(request.user, project, "readiness.answer"),
            "snapshots": snapshots[:12], "history": selectors.snapshot_history_figure(snapshots=snapshots),
            "snapshot_form": SnapshotForm(), **extra}


@project_view("readiness.view")
def assessment(request, project):
    return render(request, "readiness/assessment.html", _assessment_context(request, project))


@project_view("readiness.answer")
@require_POST
def answer(request, project, item_key: str):
    form = AnswerForm(request.POST, choices=services.answer_choices(item_key))
    if form.is_valid():
        try:
            services.readiness_answer_set(project=project, actor=request.user, item_key=item_key,
                                          answer=form.cleaned_data.get("answer", ""), note=form.cleaned_data["note"])
        except ApplicationError as exc:
            add_domain_error(form, exc)
    a = assessment_compute(project=project)
    item = a.item(item_key)
    if item is None:
        return HttpResponse("Unknown readiness item", status=404)
    if not request.htmx:
        if form.errors:
            messages.error(request, "; ".join(e for errs in form.errors.values() for e in errs))
        return redirect("readiness:assessment", project=project.slug)
    return render(request, "readiness/_item.html", {"project": project, "i": item, "can_answer": True,
                                                    "form_errors": form.errors, "open": bool(form.errors)},
                  status=422 if form.errors else 200)


@project_view("readiness.answer")
@require_POST
def snapshot_create(request, project):
    form = SnapshotForm(request.POST)
    if form.is_valid():
        try:
            snap = services.readiness_snapshot_save(project=project, actor=request.user, note=form.cleaned_data["note"])
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            if not request.htmx:
                messages.success(request, f"Snapshot saved: {snap.stage}, score {snap.score}.")
                return redirect("readiness:assessment", project=project.slug)
    ctx = _assessment_context(request, project, snapshot_form=form if form.errors else SnapshotForm())
    return render(request, "readiness/_snapshots.html", ctx, status=422 if form.errors else 200)


def _portfolio(request):
    form = PortfolioFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    sort = data.get("sort") or "name"
    descending = data.get("dir") == "desc"
    rows = selectors.portfolio_rows(user=request.user, search=data.get("q") or "", stage=data.get("stage") or "",
                                    alerts=data.get("alerts") or "", min_score=data.get("min_score"), sort=sort,
                                    descending=descending)
    return form, rows, sort, descending


@vary_on_headers("HX-Request")
@user_view
def portfolio(request):
    form, rows, sort, descending = _portfolio(request)
    figures = selectors.portfolio_figures(rows=rows)
    trend = selectors.portfolio_trend(projects=[r.project for r in rows])
    params = request.GET.copy()
    for key in ("sort", "dir"):
        params.pop(key, None)
    ctx = {"form": form, "rows": rows, "sort": sort, "descending": descending, "figures": figures,
           "charts": selectors.portfolio_charts(figures=figures, trend=trend), "trend": trend,
           "base_query": params.urlencode(), "query": request.GET.urlencode(), "stages": scoring.STAGES,
           "stage_help": scoring.STAGE_HELP,
           "columns": [("name", "Project"), ("stage", "Stage"), ("score", "Readiness"), ("mlts", "ML Test Score"),
                       ("lead_time", "Lead time"), ("owner", "Owner"), ("open_alerts", "Open alerts"),
                       ("last_promotion", "Last promotion")]}
    if request.htmx and request.htmx.target == "portfolio-body":
        return render(request, "readiness/_portfolio_body.html", ctx)
    return render(request, "readiness/portfolio.html", ctx)


@user_view
def portfolio_csv(request):
    _form, rows, _sort, _desc = _portfolio(request)
    response = HttpResponse(services.portfolio_csv(rows=rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="portfolio-{timezone.now():%Y%m%d-%H%M}.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _first_url(*candidates) -> str:
    from django.urls import NoReverseMatch, reverse

    for name, args in candidates:
        try:
            return reverse(name, args=args)
        except NoReverseMatch:
            continue
    return ""


@user_view
def tour(request):
    """A newcomer's walk through the demo organisation, persona by persona (links go to live pages)."""
    from apps.projects.models import Project

    from .demo import DEMO_PASSWORD

    loaded = set(Project.objects.filter(slug__in=["churn", "fraud", "support", "pricing"])
                 .values_list("slug", flat=True))
    links = {
        "portfolio": _first_url(("readiness:portfolio", [])),
        "churn_readiness": _first_url(("readiness:assessment", ["churn"])),
        "pricing_readiness": _first_url(("readiness:assessment", ["pricing"])),
        "features": _first_url(("features:catalog", ["churn"])),
        "view": _first_url(("features:view-detail", ["churn", "customer-activity"])),
        "training_set": _first_url(("features:trainingset-detail", ["churn", "churn-2024-q4"])),
        "models": _first_url(("registry:model-list", ["churn"])),
        "upload": _first_url(("registry:version-upload", ["churn", "churn-model"])),
        "pricing_models": _first_url(("registry:model-detail", ["pricing", "elasticity"])),
        "deployment": _first_url(("deployments:deployment-detail", ["churn", "churn-api"])),
        "inbox": _first_url(("releases:inbox", [])),
        "promotions": _first_url(("releases:request-list", ["churn"])),
        "monitoring": _first_url(("monitoring:overview", ["churn"])),
        "dashboard": _first_url(("monitoring:dashboard", ["churn", "churn-api"])),
        "alerts": _first_url(("monitoring:alert-list", ["churn"])),
        "retraining": _first_url(("training:retraining-list", ["churn"]), ("monitoring:policy", ["churn"])),
        "fraud": _first_url(("deployments:deployment-detail", ["fraud", "fraud-api"])),
        "api_docs": "/api/docs",
    }
    return render(request, "readiness/tour.html", {"links": links, "loaded": loaded, "password": DEMO_PASSWORD})

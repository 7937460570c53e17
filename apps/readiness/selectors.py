"""Reads for the readiness pages, the API and the portfolio. Access is checked through the projects
app's selectors; every figure is computed live by ``assess``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import QuerySet

from apps.projects.models import Membership, Role
from apps.projects.permissions import can
from apps.projects.selectors import project_get_for_user, project_list_for_user

from . import scoring
from .assess import Assessment, assessment_compute, last_promotion_at
from .models import ReadinessSnapshot

SORTS = {"name", "stage", "score", "lead_time", "open_alerts", "last_promotion", "owner", "mlts"}


def assessment_get_for_user(*, user, slug: str) -> Assessment:
    project = project_get_for_user(user=user, slug=slug, action="readiness.view")
    return assessment_compute(project=project)


def snapshot_list(*, project) -> QuerySet[ReadinessSnapshot]:
    return ReadinessSnapshot.objects.filter(project=project).select_related("taken_by").order_by("-taken_at", "-id")


@dataclass
class PortfolioRow:
    project: object
    assessment: Assessment
    last_promotion: object
    project_owners: list

    @property
    def stage(self) -> str:
        return self.assessment.stage

    @property
    def stage_index(self) -> int:
        return scoring.stage_index(self.assessment.stage)

    @property
    def score(self) -> int:
        return self.assessment.score

    @property
    def lead_time_s(self):
        return self.assessment.lead_time_s

    @property
    def lead_time(self) -> str:
        return scoring.format_duration(self.lead_time_s) if self.lead_time_s is not None else "—"

    @property
    def open_alerts(self) -> int:
        return self.assessment.open_alerts

    @property
    def owner(self) -> str:
        return ", ".join(self.assessment.owners) or ", ".join(self.project_owners)

    @property
    def mlts(self) -> float:
        return self.assessment.mlts["final"]


def portfolio_rows(*, user, search: str = "", stage: str = "", alerts: str = "", min_score: int | None = None,
                   sort: str = "name", descending: bool = False) -> list[PortfolioRow]:
    """Every project the user can see (and may read the readiness of), assessed live, filtered and sorted."""
    projects = [p for p in project_list_for_user(user=user, search=search) if can(user, p, "readiness.view")]
    owners = defaultdict(list)
    for pid, username in Membership.objects.filter(project__in=projects, role=Role.OWNER).values_list(
            "project_id", "user__username"):
        owners[pid].append(username)
    rows = [PortfolioRow(project=p, assessment=assessment_compute(project=p), last_promotion=last_promotion_at(p),
                         project_owners=sorted(owners[p.pk])) for p in projects]
    if stage in scoring.STAGES:
        rows = [r for r in rows if r.stage == stage]
    if alerts == "open":
        rows = [r for r in rows if r.open_alerts]
    elif alerts == "none":
        rows = [r for r in rows if not r.open_alerts]
    if min_score is not None:
        rows = [r for r in rows if r.score >= min_score]
    sort = sort if sort in SORTS else "name"
    keys = {
        "name": lambda r: r.project.name.lower(),
        "stage": lambda r: (r.stage_index, r.score),
        "score": lambda r: r.score,
        "mlts": lambda r: r.mlts,
        # projects without a figure go last whatever the direction
        "lead_time": lambda r: (r.lead_time_s is None) != descending and 0 or 1,
        "open_alerts": lambda r: r.open_alerts,
        "last_promotion": lambda r: r.last_promotion.timestamp() if r.last_promotion else float("-inf"),
        "owner": lambda r: r.owner.lower(),
    }
    if sort == "lead_time":
        known = sorted([r for r in rows if r.lead_time_s is not None], key=lambda r: r.lead_time_s, reverse=descending)
        return known + [r for r in rows if r.lead_time_s is None]
    return sorted(rows, key=keys[sort], reverse=descending)


def portfolio_figures(*, rows: list[PortfolioRow]) -> dict:
    """Organisation figures over the rows shown: share in production, median lead time, stage counts."""
    n = len(rows)
    in_prod = sum(1 for r in rows if r.stage_index >= scoring.stage_index("production"))
    leads = [r.lead_time_s for r in rows if r.lead_time_s is not None]
    med = scoring.median(leads)
    return {"projects": n, "in_production": in_prod, "share_in_production": scoring.share(in_prod, n),
            "share_in_production_text": scoring.format_share(scoring.share(in_prod, n)),
            "median_lead_time_s": med, "median_lead_time": scoring.format_duration(med),
            "open_alerts": sum(r.open_alerts for r in rows),
            "mean_score": round(sum(r.score for r in rows) / n) if n else None,
            "by_stage": {s: sum(1 for r in rows if r.stage == s) for s in scoring.STAGES}}


def portfolio_trend(*, projects) -> list[dict]:
    """Each project's latest snapshot per period, carried forward to later periods. The period is the UTC
    day; when all snapshots fall within two days (a new portal, the demo) it is the minute instead, so the
    trend still shows the steps. Returns [{"at", "mean_score", "share_in_production", "median_lead_time_s",
    "projects"}]."""
    snaps = list(ReadinessSnapshot.objects.filter(project__in=projects).order_by("taken_at", "id")
                 .values("project_id", "taken_at", "score", "stage", "lead_time_s"))
    if not snaps:
        return []
    short = (snaps[-1]["taken_at"] - snaps[0]["taken_at"]).total_seconds() < 2 * 86400

    def bucket(t):
        return t.replace(second=0, microsecond=0).isoformat() if short else t.date().isoformat()

    by_period: dict = {}
    for s in snaps:
        by_period.setdefault(bucket(s["taken_at"]), {})[s["project_id"]] = s
    state: dict = {}
    out = []
    for at in sorted(by_period):
        state.update(by_period[at])
        values = list(state.values())
        prod = sum(1 for v in values if scoring.stage_index(v["stage"]) >= scoring.stage_index("production"))
        out.append({"at": at, "projects": len(values),
                    "mean_score": round(sum(v["score"] for v in values) / len(values), 1),
                    "share_in_production": prod / len(values),
                    "median_lead_time_s": scoring.median([v["lead_time_s"] for v in values])})
    return out


STAGE_COLORS = {"prototype": "#9aa5b1", "registered": "#7c8db5", "shadow": "#d9a441", "production": "#3d8bfd",
                "monitored": "#2f9e62"}


def portfolio_charts(*, figures: dict, trend: list[dict]) -> dict:
    stages = list(scoring.STAGES)
    stage_fig = {"data": [{"type": "bar", "x": stages, "y": [figures["by_stage"][s] for s in stages],
                           "marker": {"color": [STAGE_COLORS[s] for s in stages]}, "name": "projects"}],
                 "layout": {"title": {"text": "Projects by stage"}, "height": 280, "margin": {"t": 40, "b": 40},
                            "yaxis": {"title": {"text": "projects"}, "dtick": 1}}}
    trend_fig = None
    if trend:
        days = [t["at"] for t in trend]
        trend_fig = {"data": [
            {"type": "scatter", "mode": "lines+markers", "x": days, "y": [t["mean_score"] for t in trend],
             "name": "mean readiness score", "yaxis": "y"},
            {"type": "scatter", "mode": "lines+markers", "x": days,
             "y": [round(100 * t["share_in_production"], 1) for t in trend], "name": "% of projects in production",
             "yaxis": "y"},
            {"type": "scatter", "mode": "lines+markers", "x": days,
             "y": [round(t["median_lead_time_s"] / 86400, 2) if t["median_lead_time_s"] is not None else None
                   for t in trend], "name": "median lead time (days)", "yaxis": "y2", "line": {"dash": "dot"}}],
            "layout": {"title": {"text": "Trend (from saved snapshots)"}, "height": 300, "margin": {"t": 40, "b": 40},
                       "yaxis": {"title": {"text": "score / %"}, "range": [0, 100]},
                       "yaxis2": {"title": {"text": "lead time (days)"}, "overlaying": "y", "side": "right",
                                  "rangemode": "tozero"},
                       "xaxis": {"type": "date"},
                       "legend": {"orientation": "h", "y": -0.25}}}
    return {"stage": stage_fig, "trend": trend_fig}


def snapshot_history_figure(*, snapshots) -> dict | None:
    snaps = list(reversed(list(snapshots[:200])))
    if not snaps:
        return None
    x = [s.taken_at.isoformat() for s in snaps]
    return {"data": [
        {"type": "scatter", "mode": "lines+markers", "x": x, "y": [s.score for s in snaps], "name": "readiness score",
         "text": [s.stage for s in snaps], "hovertemplate": "%{x}<br>score %{y}<br>stage %{text}<extra></extra>"},
        {"type": "scatter", "mode": "lines+markers", "x": x, "y": [round(100 * s.ml_test_score / 7, 1) for s in snaps],
         "name": "ML Test Score (% of 7)", "line": {"dash": "dot"}}],
        "layout": {"height": 260, "margin": {"t": 20, "b": 40}, "yaxis": {"range": [0, 100], "title": {"text": "%"}},
                   "legend": {"orientation": "h", "y": -0.3}}}

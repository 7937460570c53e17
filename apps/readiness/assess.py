"""The live readiness assessment of one project, computed from the other apps' records.

Every item reads the owning app's tables directly (readiness sits on top of every app, see DESIGN.md),
returns its status with the figure and a link to the evidence, and is written defensively: capabilities
that another app adds later (shadow runs, promotion requests, retraining policies) are looked up by
model name and the item says so plainly when the portal does not have them.

Layout: ``facts.py`` (thresholds, the loaded facts of a project, lookups), ``items.py`` (the 13 core
items), ``mlts_checks.py`` (the ML Test Score tests decided from records), ``scoring.py`` (pure: grades,
score, stage), this module (the assessment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from apps.deployments.models import (
    Deployment,
    DeploymentEvent,
)
from apps.monitoring.models import (
    Alert,
    AlertRule,
    AlertStatus,
)
from apps.projects.models import Project

from . import mltestscore, scoring
from .facts import (
    CORE_KEYS,
    PEOPLE_ITEMS,
    SECTIONS,
    Facts,
    _fk_name,
    _schedule_state,
    facts_load,
    optional_model,
    promotion_request_model,
    retraining_policy_model,
    shadow_run_model,
    version_lineage,
)
from .items import (  # noqa: F401 (re-exported)
    item_alert_channels,
    item_availability,
    item_drift_schedule,
    item_lead_time,
    item_lineage,
    item_oncall,
    item_online_inputs,
    item_open_alerts,
    item_outcomes,
    item_ownership,
    item_retraining,
    item_skew,
    item_standard_api,
)
from .mlts_checks import MLTS_AUTO, mlts_item  # noqa: F401
from .scoring import FAIL, PASS, WARN, ItemResult

CORE_ITEMS = (item_lead_time, item_lineage, item_ownership, item_standard_api, item_oncall,
              item_online_inputs, item_availability, item_skew,
              item_drift_schedule, item_outcomes, item_alert_channels, item_open_alerts, item_retraining)


def stage_facts(f: Facts) -> scoring.StageFacts:
    shadow = shadow_run_model()
    shadow_runs = 0
    if shadow is not None:
        d_fk = _fk_name(shadow, Deployment)
        if d_fk:
            shadow_runs = shadow.objects.filter(**{f"{d_fk}__project": f.project}).count()
    monitored = 0
    for d in f.live_with_traffic:
        _, _, on_time = _schedule_state(f, d)
        has_rule = AlertRule.objects.filter(deployment=d, enabled=True).exclude(channels=[]).exists()
        monitored += bool(on_time and has_rule)
    return scoring.StageFacts(ready_versions=len(f.ready_versions), deployments=len(f.deployments),
                              shadow_runs=shadow_runs, live_with_traffic=len(f.live_with_traffic), monitored=monitored)


@dataclass(frozen=True)
class Assessment:
    project: Project
    computed_at: datetime
    stage: str
    score: int
    items: list  # core items (handoff, features, monitoring)
    mlts_items: list
    mlts: dict
    lead_time_s: float | None
    open_alerts: int
    owners: list

    @property
    def sections(self) -> list[tuple[str, str, list]]:
        out = []
        for key in ("handoff", "features", "monitoring"):
            out.append((key, SECTIONS[key], [i for i in self.items if i.section == key]))
        return out

    @property
    def mlts_sections(self) -> list[tuple[str, str, list, float]]:
        return [(g, SECTIONS[g], [i for i in self.mlts_items if i.section == g], self.mlts["groups"][g])
                for g in mltestscore.GROUPS]

    def item(self, key: str) -> ItemResult | None:
        return next((i for i in self.items + self.mlts_items if i.key == key), None)

    @property
    def counts(self) -> dict:
        return {s: sum(1 for i in self.items if i.status == s) for s in (PASS, WARN, FAIL)}


def assessment_compute(*, project: Project, now: datetime | None = None) -> Assessment:
    f = facts_load(project=project, now=now)
    items = [fn(f) for fn in CORE_ITEMS]
    mlts_items = [mlts_item(f, t) for t in mltestscore.TESTS]
    lead = next(i for i in items if i.key == "handoff.lead_time").value
    open_alerts = Alert.objects.filter(deployment__project=project,
                                       status__in=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]).count()
    owners = sorted({d.owner.username for d in f.deployments if d.owner})
    return Assessment(project=project, computed_at=f.now, stage=scoring.stage_for(stage_facts(f)),
                      score=scoring.readiness_score(items), items=items, mlts_items=mlts_items,
                      mlts=scoring.ml_test_score(mlts_items, mltestscore.GROUPS), lead_time_s=lead,
                      open_alerts=open_alerts, owners=owners)


def last_promotion_at(project: Project):
    return (DeploymentEvent.objects.filter(deployment__project=project, kind__in=["promote", "version"])
            .order_by("-created_at").values_list("created_at", flat=True).first())


__all__ = ["CORE_ITEMS", "CORE_KEYS", "MLTS_AUTO", "PEOPLE_ITEMS", "SECTIONS", "Assessment", "assessment_compute",
           "facts_load", "last_promotion_at", "mlts_item", "optional_model", "promotion_request_model",
           "retraining_policy_model", "shadow_run_model", "stage_facts", "version_lineage"]

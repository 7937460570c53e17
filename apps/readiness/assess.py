"""The live readiness assessment of one project, computed from the other apps' records.

Every item reads the owning app's tables directly (readiness sits on top of every app, see DESIGN.md),
returns its status with the figure and a link to the evidence, and is written defensively: capabilities
that another app adds later (shadow runs, promotion requests, retraining policies) are looked up by
model name and the item says so plainly when the portal does not have them.

Thresholds are constants below (documented in the README's readiness section).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.apps import apps as django_apps
from django.db import connection
from django.db.models import Q, Sum
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.deployments.models import (
    Deployment,
    DeploymentEvent,
    DeploymentStatus,
    PredictionLog,
    PredictionMinuteStat,
)
from apps.features.models import FeatureView
from apps.monitoring.models import (
    Alert,
    AlertRule,
    AlertStatus,
    MonitoringWindow,
    MonitorSettings,
    Outcome,
    WindowKind,
)
from apps.projects.models import AuditEvent, Membership, Project, Role
from apps.registry.models import ModelVersion, VersionStatus

from . import mltestscore, scoring
from .scoring import FAIL, PASS, WARN, ItemResult

# --- thresholds ------------------------------------------------------------------------------------
LEAD_TIME_PASS_DAYS = 14  # median upload → production at most this: pass
LEAD_TIME_WARN_DAYS = 42  # ... at most this: warn; longer: fail
LINEAGE_PASS, LINEAGE_WARN = 0.8, 0.5  # share of ready versions with full lineage
ONLINE_INPUTS_PASS, ONLINE_INPUTS_WARN = 0.9, 0.5  # share of production inputs from online feature views
SKEW_PASS, SKEW_WARN = 0.01, 0.05  # highest per-feature mismatch rate
OUTCOMES_PASS_SHARE = 0.25  # share of predictions (30 days) with an outcome
LABEL_LATENCY_PASS_DAYS = 30
TRAFFIC_DAYS = 7  # "live" means answered predictions in the last 7 days
OUTCOME_DAYS = 30
COUNT_WINDOW_PERIOD = timedelta(hours=24)  # expected cadence of count-based windows
STALE_PASS_DAYS, STALE_WARN_DAYS = 90, 180
QUALITY_PASS, QUALITY_WARN = 0.05, 0.2  # worst per-feature missing / out-of-range / unseen rate
LATENCY_RATIO_PASS, LATENCY_RATIO_WARN = 1.5, 3.0
ERROR_RATE_PASS, ERROR_RATE_WARN = 0.01, 0.05
METRIC_GAP_PASS, METRIC_GAP_WARN = 0.05, 0.10  # |offline − online| of the headline metric

SECTIONS = {
    "handoff": "The handoff — from notebook to an owned, served model",
    "features": "The feature gap — training and serving share one definition",
    "monitoring": "The monitoring vacuum — would we know if it failed?",
    **{g: f"ML Test Score · {title}" for g, title in mltestscore.GROUPS.items()},
}
CORE_KEYS = ("handoff.lead_time", "handoff.lineage", "handoff.ownership", "handoff.standard_api", "handoff.oncall",
             "features.online_inputs", "features.availability", "features.skew", "monitoring.drift_schedule",
             "monitoring.outcomes", "monitoring.alert_channels", "monitoring.open_alerts", "monitoring.retraining")
PEOPLE_ITEMS = {
    "handoff.oncall": ("handoff", "An on-call rota covers every production model",
                       "Someone is reachable when a production model or its data breaks, outside office hours too."),
}


def _url(name: str, *args) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


_TABLES: set[str] | None = None


def _table_exists(table: str) -> bool:
    global _TABLES
    if _TABLES is None or table not in _TABLES:  # re-read when missing: migrations may have run since
        _TABLES = set(connection.introspection.table_names())
    return table in _TABLES


def optional_model(*candidates: tuple[str, str]):
    """A model another app may add later (e.g. ("deployments", "ShadowRun")), or None — also None while
    its table is not migrated yet, so the assessment never breaks on a half-deployed capability."""
    for app_label, name in candidates:
        try:
            model = django_apps.get_model(app_label, name)
        except LookupError:
            continue
        if _table_exists(model._meta.db_table):
            return model
    return None


def _fk_name(model, target) -> str | None:
    """The name of ``model``'s first foreign key to ``target`` (robust against naming choices)."""
    for f in model._meta.get_fields():
        if getattr(f, "many_to_one", False) and f.related_model is target:
            return f.name
    return None


def _candidate_fk(model) -> list[str]:
    """The foreign key naming the version under evaluation ("candidate" or "version"; never the production
    version a request compares against)."""
    names = [f.name for f in model._meta.get_fields()
             if getattr(f, "many_to_one", False) and f.related_model is ModelVersion]
    for preferred in ("candidate", "version", "candidate_version"):
        if preferred in names:
            return [preferred]
    return [n for n in names if "production" not in n and "previous" not in n][:1]


def shadow_run_model():
    return optional_model(("deployments", "ShadowRun"), ("deployments", "Shadow"))


def promotion_request_model():
    return optional_model(("deployments", "PromotionRequest"), ("deployments", "Promotion"))


def retraining_policy_model():
    return optional_model(("monitoring", "RetrainingPolicy"), ("registry", "RetrainingPolicy"),
                          ("deployments", "RetrainingPolicy"))


def _approved_q(model) -> Q:
    field_names = {f.name for f in model._meta.get_fields()}
    if "status" in field_names:
        return Q(status__in=["approved", "promoted", "done"])
    if "approved_at" in field_names:
        return Q(approved_at__isnull=False)
    return Q(pk__in=[])


# --- the loaded facts of one project ---------------------------------------------------------------


@dataclass
class Facts:
    project: Project
    now: datetime
    ready_versions: list = field(default_factory=list)
    deployments: list = field(default_factory=list)
    live: list = field(default_factory=list)  # live deployments
    traffic: dict = field(default_factory=dict)  # deployment id → predictions in the last TRAFFIC_DAYS
    arrivals: list = field(default_factory=list)  # (deployment, version, arrived_at, kind)
    latest_window: dict = field(default_factory=dict)  # deployment id → latest MonitoringWindow
    answers: dict = field(default_factory=dict)

    @property
    def live_with_traffic(self) -> list:
        return [d for d in self.live if self.traffic.get(d.pk)]

    @property
    def served(self) -> list:
        """The deployments whose production version counts as served: live ones, else all."""
        return self.live or self.deployments


def facts_load(*, project: Project, now: datetime | None = None) -> Facts:
    from .models import ReadinessAnswer

    now = now or timezone.now()
    facts = Facts(project=project, now=now)
    facts.ready_versions = list(ModelVersion.objects.filter(model__project=project, status=VersionStatus.READY)
                                .select_related("model", "training_set"))
    facts.deployments = list(Deployment.objects.filter(project=project)
                             .select_related("owner", "registered_model__feature_set", "production_version__model",
                                             "production_version__training_set"))
    facts.live = [d for d in facts.deployments if d.status == DeploymentStatus.LIVE]
    since = now - timedelta(days=TRAFFIC_DAYS)
    ids = [d.pk for d in facts.deployments]
    rows = (PredictionMinuteStat.objects.filter(deployment_id__in=ids, minute__gte=since)
            .values("deployment_id").annotate(n=Sum("rows")))
    facts.traffic = {r["deployment_id"]: r["n"] or 0 for r in rows}
    for dep_id in ids:  # the minute stats are written by the drainer; the log is the ground truth
        if not facts.traffic.get(dep_id):
            n = PredictionLog.objects.filter(deployment_id=dep_id, created_at__gte=since).count()
            if n:
                facts.traffic[dep_id] = n
    facts.arrivals = _arrivals(facts.deployments)
    for dep in facts.deployments:
        w = MonitoringWindow.objects.filter(deployment=dep).order_by("-end", "-id").first()
        if w is not None:
            facts.latest_window[dep.pk] = w
    facts.answers = {a.item_key: a for a in ReadinessAnswer.objects.filter(project=project).select_related("answered_by")}
    return facts


def _arrivals(deployments: list) -> list:
    """When each version first reached production on each deployment: deploy events of deployments that
    went live at creation, and every version change / promotion (rollbacks return an old version)."""
    if not deployments:
        return []
    by_id = {d.pk: d for d in deployments}
    paused_at_creation = set()
    for ev in AuditEvent.objects.filter(verb="deployment.deploy", target_id__in=[str(i) for i in by_id]):
        if ev.details.get("live") is False:
            paused_at_creation.add(int(ev.target_id))
    seen, out = set(), []
    events = (DeploymentEvent.objects.filter(deployment_id__in=by_id, kind__in=["deploy", "version", "promote"],
                                             version__isnull=False)
              .select_related("version").order_by("created_at", "id"))
    for ev in events:
        if ev.kind == "deploy" and ev.deployment_id in paused_at_creation:
            continue
        key = (ev.deployment_id, ev.version_id)
        if key in seen:
            continue
        seen.add(key)
        out.append((by_id[ev.deployment_id], ev.version, ev.created_at, ev.kind))
    return out


# --- handoff ---------------------------------------------------------------------------------------


def item_lead_time(f: Facts) -> ItemResult:
    base = {"key": "handoff.lead_time", "section": "handoff",
            "title": "Lead time from a version's upload to production"}
    if not f.arrivals:
        return ItemResult(**base, status=FAIL, figure="no version has reached production",
                          detail="Lead time starts counting when a version is uploaded and stops when it serves "
                                 "production traffic (deploy or approved promotion).",
                          evidence_url=_url("registry:model-list", f.project.slug), evidence_label="Models")
    per_dep = {}
    for dep, version, at, _kind in f.arrivals:
        per_dep.setdefault(dep, []).append(((at - version.created_at).total_seconds(), at, version))
    leads = [lt for rows in per_dep.values() for lt, _, _ in rows]
    med = scoring.median(leads)
    parts = []
    for dep, rows in per_dep.items():
        latest = max(rows, key=lambda r: r[1])
        parts.append(f"{dep.slug}: median {scoring.format_duration(scoring.median([r[0] for r in rows]))}, "
                     f"latest {scoring.format_duration(latest[0])} ({latest[2]})")
    latest_dep = max(f.arrivals, key=lambda a: a[2])[0]
    return ItemResult(**base, status=scoring.grade(med / 86400, pass_at=LEAD_TIME_PASS_DAYS,
                                                   warn_at=LEAD_TIME_WARN_DAYS, higher_is_better=False),
                      figure=f"median {scoring.format_duration(med)} over {len(leads)} version(s)",
                      detail="; ".join(parts) + f". Pass ≤ {LEAD_TIME_PASS_DAYS} days, warn ≤ {LEAD_TIME_WARN_DAYS}.",
                      value=med, evidence_url=_url("deployments:deployment-detail", f.project.slug, latest_dep.slug),
                      evidence_label=f"Timeline of {latest_dep.slug}",
                      extra={"per_deployment": {d.slug: {"median_s": scoring.median([r[0] for r in rows]),
                                                         "latest_s": max(rows, key=lambda r: r[1])[0]}
                                                for d, rows in per_dep.items()}})


def version_lineage(v: ModelVersion) -> str:
    """full: names its point-in-time training set (which pins feature set and source versions);
    partial: only a hash / name of its training data or a parent; none otherwise."""
    if v.training_set_id and getattr(v.training_set, "sha256", ""):
        return "full"
    if v.training_data_sha256 or v.training_data_name or v.parent_id:
        return "partial"
    return "none"


def item_lineage(f: Facts) -> ItemResult:
    base = {"key": "handoff.lineage", "section": "handoff", "title": "Versions with full lineage",
            "evidence_url": _url("registry:model-list", f.project.slug), "evidence_label": "Models"}
    if not f.ready_versions:
        return ItemResult(**base, status=FAIL, figure="no validated version",
                          detail="Register a version with the training set it was trained on.")
    kinds = [version_lineage(v) for v in f.ready_versions]
    full, partial = kinds.count("full"), kinds.count("partial")
    value = full / len(kinds)
    return ItemResult(**base, status=scoring.grade(value, pass_at=LINEAGE_PASS, warn_at=LINEAGE_WARN), value=value,
                      figure=f"{full} of {len(kinds)} ({scoring.format_share(value)})",
                      detail=f"Full lineage = the version names its point-in-time training set (which pins the "
                             f"feature set and the exact source versions). {partial} more name only a data hash "
                             f"or a parent. Pass ≥ {LINEAGE_PASS:.0%}, warn ≥ {LINEAGE_WARN:.0%}.")


def _reviewers(project: Project) -> list:
    return list(Membership.objects.filter(project=project, role__in=[Role.REVIEWER, Role.OWNER])
                .values_list("user_id", flat=True))


def item_ownership(f: Facts) -> ItemResult:
    base = {"key": "handoff.ownership", "section": "handoff",
            "title": "Deployments with an owner and at least one reviewer",
            "evidence_url": _url("deployments:deployment-list", f.project.slug), "evidence_label": "Deployments"}
    if not f.deployments:
        return ItemResult(**base, status=FAIL, figure="no deployment",
                          detail="Nobody owns a served model yet: create a deployment with an owner.")
    reviewers = _reviewers(f.project)
    ok, missing = 0, []
    for d in f.deployments:
        others = [u for u in reviewers if u != d.owner_id]
        if d.owner_id and others:
            ok += 1
        else:
            missing.append(f"{d.slug} ({'no owner' if not d.owner_id else 'no reviewer besides its owner'})")
    value = ok / len(f.deployments)
    return ItemResult(**base, status=scoring.grade(value, pass_at=1.0, warn_at=0.5), value=value,
                      figure=f"{ok} of {len(f.deployments)}",
                      detail=("Missing: " + ", ".join(missing) + ". ") if missing else
                      "Every deployment has an owner and someone else who can review its promotions.")


def item_standard_api(f: Facts) -> ItemResult:
    base = {"key": "handoff.standard_api", "section": "handoff", "title": "Serving through the standard API",
            "evidence_url": _url("deployments:deployment-list", f.project.slug), "evidence_label": "Deployments"}
    if not f.live:
        return ItemResult(**base, status=FAIL, figure="no live deployment",
                          detail="No model answers at /api/v1/deployments/<slug>/predict yet.")
    with_traffic = f.live_with_traffic
    total = sum(f.traffic.get(d.pk, 0) for d in f.live)
    value = len(with_traffic) / len(f.live)
    return ItemResult(**base, status=PASS if value == 1 else WARN, value=value,
                      figure=f"{len(with_traffic)} of {len(f.live)} live, {total:,} predictions in {TRAFFIC_DAYS} days",
                      detail="Live deployments that answered predictions through /api/v1/deployments/<slug>/predict "
                             f"in the last {TRAFFIC_DAYS} days (each prediction logged with its version).")


def item_oncall(f: Facts) -> ItemResult:
    return _people_item(f, "handoff.oncall")


# --- the feature gap -------------------------------------------------------------------------------


def item_online_inputs(f: Facts) -> ItemResult:
    base = {"key": "features.online_inputs", "section": "features",
            "title": "Production model inputs from feature-store definitions served online",
            "evidence_url": _url("features:catalog", f.project.slug), "evidence_label": "Feature catalog"}
    deps = f.served
    if not deps:
        return ItemResult(**base, status=FAIL, figure="no deployment",
                          detail="No model is deployed, so no input is known to come from the feature store.")
    total = online = 0
    parts = []
    for d in deps:
        model = d.registered_model
        names = [c.get("name") for c in (model.input_contract or [])]
        fs = model.feature_set
        served_online = set()
        if fs is not None:
            for it in fs.items.select_related("feature__view"):
                if it.feature.view.online:
                    served_online.add(it.output_name)
        n_online = sum(1 for n in names if n in served_online)
        total += len(names)
        online += n_online
        parts.append(f"{d.slug}: {n_online}/{len(names)}" + ("" if fs else " (no feature set)"))
    value = scoring.share(online, total)
    return ItemResult(**base, status=scoring.grade(value, pass_at=ONLINE_INPUTS_PASS, warn_at=ONLINE_INPUTS_WARN),
                      value=value, figure=f"{online} of {total} inputs ({scoring.format_share(value)})",
                      detail="; ".join(parts) + ". An input counts when the model's feature set takes it from a "
                             f"feature view served online. Pass ≥ {ONLINE_INPUTS_PASS:.0%}, warn ≥ {ONLINE_INPUTS_WARN:.0%}.")


def item_availability(f: Facts) -> ItemResult:
    base = {"key": "features.availability", "section": "features",
            "title": "Availability constraints declared for every feature view",
            "evidence_url": _url("features:catalog", f.project.slug), "evidence_label": "Feature catalog"}
    views = list(FeatureView.objects.filter(project=f.project, is_current=True))
    if not views:
        return ItemResult(**base, status=FAIL, figure="no feature view",
                          detail="Nothing declares when feature values become available: training sets cannot be "
                                 "point-in-time correct.")
    zero = [v.name for v in views if not v.availability_lag and not v.written_at_column]
    declared = len(views) - len(zero)
    value = declared / len(views)
    return ItemResult(**base, status=PASS if not zero else WARN, value=value,
                      figure=f"{declared} of {len(views)} views",
                      detail=("Every view declares an availability lag (or a written-at column) and is joined "
                              "point-in-time with it.") if not zero else
                      f"Declared lag 0 with no written-at column (values usable the instant they happen — rarely "
                      f"true): {', '.join(zero)}.")


def _latest_skew(f: Facts):
    w = (MonitoringWindow.objects.filter(deployment__project=f.project).exclude(skew={})
         .select_related("deployment").order_by("-end", "-id").first())
    if w is None or not w.skew:
        return None, None
    values = [v for v in w.skew.values() if isinstance(v, (int, float))]
    return (max(values) if values else None), w


def item_skew(f: Facts) -> ItemResult:
    base = {"key": "features.skew", "section": "features", "title": "Latest measured training-serving skew"}
    value, w = _latest_skew(f)
    if w is None:
        entity = [d for d in f.deployments if d.input_mode == "entity"]
        return ItemResult(**base, status=FAIL, figure="never measured",
                          detail=("No skew check has run on this project's deployments." if entity or not f.deployments
                                  else "The deployments take features inline, not from the online store by entity "
                                       "key, so the portal cannot recompute them: skew is unmeasured."),
                          evidence_url=_url("monitoring:overview", f.project.slug), evidence_label="Monitoring")
    worst_feature = max(w.skew, key=lambda k: w.skew[k] if isinstance(w.skew[k], (int, float)) else -1)
    return ItemResult(**base, status=scoring.grade(value, pass_at=SKEW_PASS, warn_at=SKEW_WARN, higher_is_better=False),
                      value=value, figure=f"{scoring.format_share(value)} mismatch ({worst_feature})",
                      detail=f"Highest per-feature mismatch rate on {w.deployment.slug}, window ending "
                             f"{w.end:%Y-%m-%d %H:%M} UTC. Pass ≤ {SKEW_PASS:.0%}, warn ≤ {SKEW_WARN:.0%}.",
                      evidence_url=_url("monitoring:dashboard", f.project.slug, w.deployment.slug),
                      evidence_label=f"Monitoring of {w.deployment.slug}")


# --- the monitoring vacuum -------------------------------------------------------------------------


def _schedule_state(f: Facts, dep: Deployment):
    ms = MonitorSettings.objects.filter(deployment=dep).first()
    enabled = ms.schedule_enabled if ms else True
    period = (timedelta(minutes=ms.window_minutes) if ms and ms.window_kind == WindowKind.TIME
              else COUNT_WINDOW_PERIOD if ms else timedelta(minutes=60))
    last = (MonitoringWindow.objects.filter(deployment=dep, trigger=MonitoringWindow.Trigger.SCHEDULE)
            .order_by("-created_at").values_list("created_at", flat=True).first())
    age = (f.now - last).total_seconds() if last else None
    on_time = bool(enabled and last is not None and age <= (2 * period + timedelta(minutes=15)).total_seconds())
    return enabled, age, on_time


def item_drift_schedule(f: Facts) -> ItemResult:
    base = {"key": "monitoring.drift_schedule", "section": "monitoring", "title": "Drift checks running on schedule",
            "evidence_url": _url("monitoring:overview", f.project.slug), "evidence_label": "Monitoring"}
    if not f.live:
        return ItemResult(**base, status=FAIL, figure="no live deployment", detail="Nothing is served, nothing is checked.")
    states = {d.slug: _schedule_state(f, d) for d in f.live}
    on_time = [s for s, st in states.items() if st[2]]
    ages = [st[1] for st in states.values() if st[1] is not None]
    oldest = max(ages) if ages else None
    parts = [f"{s}: {'off' if not st[0] else 'never ran' if st[1] is None else scoring.format_duration(st[1]) + ' ago'}"
             for s, st in states.items()]
    status = PASS if len(on_time) == len(states) else WARN if on_time or any(st[0] for st in states.values()) else FAIL
    if not ages:
        status = FAIL
    return ItemResult(**base, status=status, value=oldest,
                      figure=f"{len(on_time)} of {len(states)} on time; last run "
                             f"{scoring.format_duration(min(ages)) + ' ago' if ages else 'never'}",
                      detail="Last scheduled window per live deployment — " + "; ".join(parts) +
                             ". On time = within two window periods (count windows: 24 h).")


def item_outcomes(f: Facts) -> ItemResult:
    base = {"key": "monitoring.outcomes", "section": "monitoring",
            "title": "Outcomes flowing back (label latency, share of predictions with outcomes)"}
    if not f.deployments:
        return ItemResult(**base, status=FAIL, figure="no deployment", detail="No predictions, no outcomes.",
                          evidence_url=_url("monitoring:overview", f.project.slug), evidence_label="Monitoring")
    since = f.now - timedelta(days=OUTCOME_DAYS)
    ids = [d.pk for d in f.deployments]
    n_pred = PredictionLog.objects.filter(deployment_id__in=ids, created_at__gte=since).count()
    outcomes = Outcome.objects.filter(deployment_id__in=ids, predicted_at__gte=since)
    n_out = outcomes.count()
    latencies = list(outcomes.order_by("-received_at").values_list("label_latency_s", flat=True)[:5000])
    med = scoring.median(latencies)
    value = scoring.share(n_out, n_pred)
    dep = max(f.deployments, key=lambda d: f.traffic.get(d.pk, 0))
    url = _url("monitoring:dashboard", f.project.slug, dep.slug)
    if not n_out:
        return ItemResult(**base, status=FAIL, value=0.0 if n_pred else None,
                          figure=f"no outcomes for {n_pred:,} predictions" if n_pred else "no predictions",
                          detail="POST ground truth to /api/v1/deployments/<slug>/outcomes by request id.",
                          evidence_url=url, evidence_label=f"Monitoring of {dep.slug}")
    good = (value or 0) >= OUTCOMES_PASS_SHARE and (med or 0) <= LABEL_LATENCY_PASS_DAYS * 86400
    return ItemResult(**base, status=PASS if good else WARN, value=value,
                      figure=f"{scoring.format_share(value)} with outcomes; median label latency "
                             f"{scoring.format_duration(med)}",
                      detail=f"{n_out:,} outcomes for {n_pred:,} predictions in {OUTCOME_DAYS} days. Pass: at least "
                             f"{OUTCOMES_PASS_SHARE:.0%} labelled within {LABEL_LATENCY_PASS_DAYS} days.",
                      evidence_url=url, evidence_label=f"Monitoring of {dep.slug}",
                      extra={"label_latency_s": med, "predictions": n_pred, "outcomes": n_out})


def item_alert_channels(f: Facts) -> ItemResult:
    base = {"key": "monitoring.alert_channels", "section": "monitoring", "title": "Alert rules with a channel",
            "evidence_url": _url("monitoring:overview", f.project.slug), "evidence_label": "Monitoring"}
    if not f.live:
        return ItemResult(**base, status=FAIL, figure="no live deployment", detail="No rule watches a served model.")
    rules = list(AlertRule.objects.filter(deployment__in=f.live, enabled=True))
    covered = {r.deployment_id for r in rules if r.channels}
    silent = [r.name for r in rules if not r.channels]
    value = len(covered) / len(f.live)
    status = PASS if value == 1 else WARN if covered or rules else FAIL
    return ItemResult(**base, status=status, value=value,
                      figure=f"{len(covered)} of {len(f.live)} live deployments; {len(rules)} rule(s)",
                      detail=(f"Rules without a channel notify nobody: {', '.join(silent)}. " if silent else "") +
                             "A deployment is covered when an enabled rule sends email or a signed webhook.")


def item_open_alerts(f: Facts) -> ItemResult:
    base = {"key": "monitoring.open_alerts", "section": "monitoring", "title": "Open alerts",
            "evidence_url": _url("monitoring:alert-list", f.project.slug), "evidence_label": "Alerts"}
    active = list(Alert.objects.filter(deployment__project=f.project,
                                       status__in=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED])
                  .select_related("deployment", "rule"))
    if not f.deployments and not active:
        return ItemResult(**base, status=WARN, value=0, figure="nothing deployed",
                          detail="No deployment, so no alert could be raised.")
    unacked = [a for a in active if a.status == AlertStatus.OPEN]
    if not active:
        return ItemResult(**base, status=PASS, value=0, figure="none open")
    status = FAIL if unacked else WARN
    return ItemResult(**base, status=status, value=len(active),
                      figure=f"{len(active)} open ({len(unacked)} not acknowledged)",
                      detail="; ".join(a.message for a in active[:3]),
                      extra={"open": len(active)})


def item_retraining(f: Facts) -> ItemResult:
    base = {"key": "monitoring.retraining", "section": "monitoring", "title": "A retraining policy in place"}
    policy = retraining_policy_model()
    url = _url("monitoring:retraining-list", f.project.slug) or _url("monitoring:overview", f.project.slug)
    if policy is None:
        return ItemResult(**base, status=FAIL, figure="not available",
                          detail="This portal has no retraining policies yet, so no degradation starts a fix by itself.",
                          evidence_url=url, evidence_label="Monitoring")
    if not f.live:
        return ItemResult(**base, status=FAIL, figure="no live deployment", evidence_url=url,
                          evidence_label="Monitoring", detail="A policy retrains a served model; nothing is served.")
    fk = _fk_name(policy, Deployment)
    qs = policy.objects.filter(**{f"{fk}__in": f.live}) if fk else policy.objects.none()
    if "enabled" in {x.name for x in policy._meta.get_fields()}:
        qs = qs.filter(enabled=True)
    covered = set(qs.values_list(f"{fk}_id", flat=True)) if fk else set()
    value = len(covered) / len(f.live)
    return ItemResult(**base, status=PASS if value == 1 else WARN if covered else FAIL, value=value,
                      figure=f"{len(covered)} of {len(f.live)} live deployments",
                      detail="An enabled policy turns an alert into a training job, a shadow run and a promotion "
                             "request that a person approves.", evidence_url=url, evidence_label="Retraining")


# --- ML Test Score ---------------------------------------------------------------------------------


def _served_versions(f: Facts) -> list:
    versions = {d.production_version_id: d.production_version for d in f.served}
    return list(versions.values())


def _auto(status, figure, detail, url="", label="", value=None):
    return {"status": status, "figure": figure, "detail": detail, "evidence_url": url, "evidence_label": label,
            "value": value}


def mlts_data_1(f: Facts):
    versions = _served_versions(f) or f.ready_versions
    if not versions:
        return None
    ok = [v for v in versions if v.model.input_contract and v.reference_profile]
    value = len(ok) / len(versions)
    return _auto(PASS if value == 1 else WARN if ok else FAIL, f"{len(ok)} of {len(versions)} versions",
                 "Versions with a typed input contract and a reference profile of every input (checked on every "
                 "drift window).", _url("registry:model-list", f.project.slug), "Models", value)


def _promotion_approved(version, deployment) -> bool | None:
    model = promotion_request_model()
    if model is None:
        return None
    v_fks = _candidate_fk(model)
    d_fk = _fk_name(model, Deployment)
    q = Q()
    for name in v_fks:
        q |= Q(**{name: version})
    qs = model.objects.filter(q) if v_fks else model.objects.none()
    if d_fk:
        qs = qs.filter(**{d_fk: deployment})
    return qs.filter(_approved_q(model)).exists()


def mlts_model_1(f: Facts):
    if not f.served:
        return None
    reviewed = [_promotion_approved(d.production_version, d) for d in f.served]
    code = [bool(d.production_version.code_ref) for d in f.served]
    n = len(f.served)
    if all(r is None for r in reviewed):
        return _auto(WARN if all(code) else FAIL, f"{sum(code)} of {n} with a code reference",
                     "Promotion requests are not available in this portal, so review is not recorded.",
                     _url("deployments:deployment-list", f.project.slug), "Deployments", sum(code) / n)
    both = sum(1 for r, c in zip(reviewed, code, strict=True) if r and c)
    any_review = sum(1 for r in reviewed if r)
    status = PASS if both == n else WARN if any_review or any(code) else FAIL
    return _auto(status, f"{any_review} of {n} reviewed, {sum(code)} with a code reference",
                 "Served versions that came in through an approved promotion request and name their code.",
                 _url("deployments:deployment-list", f.project.slug), "Deployments", both / n)


HEADLINE = ("roc_auc", "accuracy")


def _online_metric(dep) -> tuple[str, float, float] | None:
    """(metric, offline, online) for the deployment's latest window with realized (or estimated) values."""
    offline = dep.production_version.metrics or {}
    for kind in ("realized", "estimated"):
        w = (MonitoringWindow.objects.filter(deployment=dep, version=dep.production_version).exclude(**{kind: {}})
             .order_by("-end").first())
        if w is None:
            continue
        values = getattr(w, kind)
        for m in HEADLINE + ("rmse", "mae"):
            live = (values.get(m) or {}).get("value")
            if live is not None and isinstance(offline.get(m), (int, float)):
                return f"{kind} {m}", float(offline[m]), float(live)
    return None


def mlts_model_2(f: Facts):
    pairs = [(d, p) for d in f.live if (p := _online_metric(d)) is not None and p[0].startswith("realized")]
    if not pairs:
        return None
    gap = max(abs(p[1] - p[2]) for _, p in pairs)
    d, p = max(pairs, key=lambda x: abs(x[1][1] - x[1][2]))
    return _auto(scoring.grade(gap, pass_at=METRIC_GAP_PASS, warn_at=METRIC_GAP_WARN, higher_is_better=False),
                 f"{p[0]}: offline {p[1]:.3f}, live {p[2]:.3f}",
                 f"Largest gap between the holdout metric and the metric on live traffic. Pass ≤ {METRIC_GAP_PASS}, "
                 f"warn ≤ {METRIC_GAP_WARN}.", _url("monitoring:dashboard", f.project.slug, d.slug),
                 f"Monitoring of {d.slug}", gap)


def mlts_infra_1(f: Facts):
    versions = _served_versions(f)
    if not versions:
        return None
    kinds = [version_lineage(v) for v in versions]
    status = PASS if all(k == "full" for k in kinds) else WARN if any(k != "none" for k in kinds) else FAIL
    return _auto(status, f"{kinds.count('full')} of {len(kinds)} served versions name their training set",
                 "A served version trained on a stored, hashed point-in-time training set can be retrained the same "
                 "way.", _url("registry:model-list", f.project.slug), "Models", kinds.count("full") / len(kinds))


def mlts_infra_3(f: Facts):
    versions = _served_versions(f) or f.ready_versions
    if not versions:
        return None
    ok = [v for v in versions if v.status == VersionStatus.READY and v.validation_report]
    return _auto(PASS if len(ok) == len(versions) else WARN if ok else FAIL, f"{len(ok)} of {len(versions)} validated",
                 "Each version went through the registry's pipeline: safe load, signature, smoke prediction, holdout "
                 "metrics, reference profile.", _url("registry:model-list", f.project.slug), "Models",
                 len(ok) / len(versions))


def mlts_infra_4(f: Facts):
    if not f.served:
        return None
    metrics = [bool(d.production_version.metrics) for d in f.served]
    reviewed = [_promotion_approved(d.production_version, d) for d in f.served]
    n = len(f.served)
    if all(r is None for r in reviewed):
        return _auto(WARN if all(metrics) else FAIL, f"{sum(metrics)} of {n} with holdout metrics",
                     "Holdout metrics are computed by the portal; promotion gates are not available here.",
                     _url("deployments:deployment-list", f.project.slug), "Deployments", sum(metrics) / n)
    both = sum(1 for m, r in zip(metrics, reviewed, strict=True) if m and r)
    return _auto(PASS if both == n else WARN if any(metrics) else FAIL,
                 f"{both} of {n} passed holdout metrics and a promotion review",
                 "Served versions with portal-computed holdout metrics that came in through an approved promotion "
                 "request (its gates compare them with production).",
                 _url("deployments:deployment-list", f.project.slug), "Deployments", both / n)


def mlts_infra_6(f: Facts):
    model = shadow_run_model()
    if model is None or not f.arrivals:
        return None
    v_fks = _candidate_fk(model)
    d_fk = _fk_name(model, Deployment)
    changes = [(d, v) for d, v, _, kind in f.arrivals if kind in ("version", "promote")]
    if not changes:
        return None
    shadowed = 0
    for dep, version in changes:
        q = Q()
        for name in v_fks:
            q |= Q(**{name: version})
        qs = model.objects.filter(q) if v_fks else model.objects.none()
        if d_fk:
            qs = qs.filter(**{d_fk: dep})
        shadowed += qs.exists()
    value = shadowed / len(changes)
    return _auto(PASS if value == 1 else WARN if shadowed else FAIL, f"{shadowed} of {len(changes)} version changes",
                 "Version changes whose new version first ran in shadow on the same deployment.",
                 _url("deployments:deployment-list", f.project.slug), "Deployments", value)


def mlts_infra_7(f: Facts):
    if not f.live:
        return None
    ok = 0
    for d in f.live:
        prev = {v.pk for dep, v, _, _ in f.arrivals if dep.pk == d.pk and v.pk != d.production_version_id}
        if ModelVersion.objects.filter(pk__in=prev, status=VersionStatus.READY).exists():
            ok += 1
    return _auto(PASS if ok == len(f.live) else WARN, f"{ok} of {len(f.live)} live deployments",
                 "A live deployment can roll back in one action when a version it served before is still available.",
                 _url("deployments:deployment-list", f.project.slug), "Deployments", ok / len(f.live))


def mlts_monitor_2(f: Facts):
    rates = []
    for d in f.live:
        w = f.latest_window.get(d.pk)
        if w is None or not w.quality:
            continue
        for feat, q in w.quality.items():
            rate = max((v for v in (q or {}).values() if isinstance(v, (int, float))), default=0.0)
            rates.append((rate, feat, d))
    if not rates:
        return None
    rate, feat, d = max(rates, key=lambda r: r[0])
    return _auto(scoring.grade(rate, pass_at=QUALITY_PASS, warn_at=QUALITY_WARN, higher_is_better=False),
                 f"worst {scoring.format_share(rate)} ({feat})",
                 "Worst missing / out-of-reference-range / unseen-category rate in the latest window of each live "
                 f"deployment. Pass ≤ {QUALITY_PASS:.0%}, warn ≤ {QUALITY_WARN:.0%}.",
                 _url("monitoring:dashboard", f.project.slug, d.slug), f"Monitoring of {d.slug}", rate)


def mlts_monitor_3(f: Facts):
    value, w = _latest_skew(f)
    if w is None:
        return None
    return _auto(scoring.grade(value, pass_at=SKEW_PASS, warn_at=SKEW_WARN, higher_is_better=False),
                 f"{scoring.format_share(value)} mismatch", "Highest per-feature mismatch of the latest skew check.",
                 _url("monitoring:dashboard", f.project.slug, w.deployment.slug), f"Monitoring of {w.deployment.slug}",
                 value)


def mlts_monitor_4(f: Facts):
    if not f.served:
        return None
    ages = [((f.now - d.production_version.created_at).total_seconds() / 86400, d) for d in f.served]
    age, d = max(ages, key=lambda a: a[0])
    return _auto(scoring.grade(age, pass_at=STALE_PASS_DAYS, warn_at=STALE_WARN_DAYS, higher_is_better=False),
                 f"oldest served version {age:.0f} days old ({d.production_version})",
                 f"Pass ≤ {STALE_PASS_DAYS} days, warn ≤ {STALE_WARN_DAYS}.",
                 _url("deployments:deployment-detail", f.project.slug, d.slug), d.slug, age)


def mlts_monitor_6(f: Facts):
    worst_status, figure, dep, val = None, "", None, None
    for d in f.live:
        ws = list(MonitoringWindow.objects.filter(deployment=d).order_by("-end", "-id")
                  .values_list("latency_p95_ms", "error_rate")[:21])
        ws = [w for w in ws if w[0] is not None]
        if not ws:
            continue
        latest, history = ws[0], [w[0] for w in ws[1:]]
        base = scoring.median(history) or latest[0]
        ratio = latest[0] / base if base else 1.0
        err = latest[1] or 0.0
        st = scoring.worst([scoring.grade(ratio, pass_at=LATENCY_RATIO_PASS, warn_at=LATENCY_RATIO_WARN,
                                          higher_is_better=False),
                            scoring.grade(err, pass_at=ERROR_RATE_PASS, warn_at=ERROR_RATE_WARN, higher_is_better=False)])
        if worst_status is None or scoring.STATUS_POINTS[st] < scoring.STATUS_POINTS[worst_status]:
            worst_status, dep, val = st, d, ratio
            figure = f"p95 {latest[0]:.1f} ms (×{ratio:.2f} of usual), errors {err:.1%}"
    if worst_status is None:
        return None
    return _auto(worst_status, figure, "Latest window's p95 latency against the median of the previous 20 windows, "
                 f"and its error rate. Pass ≤ ×{LATENCY_RATIO_PASS} and ≤ {ERROR_RATE_PASS:.0%} errors.",
                 _url("monitoring:dashboard", f.project.slug, dep.slug), f"Monitoring of {dep.slug}", val)


def mlts_monitor_7(f: Facts):
    if not f.live:
        return None
    perf_alerts = list(Alert.objects.filter(deployment__in=f.live, status__in=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED])
                       .filter(Q(rule__metric__startswith="realized_") | Q(rule__metric__startswith="estimated_"))
                       .select_related("deployment"))
    if perf_alerts:
        a = perf_alerts[0]
        return _auto(FAIL, f"{len(perf_alerts)} performance alert(s) open", a.message,
                     _url("monitoring:alert-list", f.project.slug), "Alerts", None)
    pairs = [(d, p) for d in f.live if (p := _online_metric(d)) is not None]
    if not pairs:
        return None
    drops = []
    for d, (metric, offline, online) in pairs:
        lower_better = metric.endswith(("rmse", "mae"))
        drops.append(((online - offline) if lower_better else (offline - online), d, metric, offline, online))
    drop, d, metric, offline, online = max(drops, key=lambda x: x[0])
    return _auto(scoring.grade(drop, pass_at=METRIC_GAP_PASS / 2, warn_at=METRIC_GAP_PASS, higher_is_better=False),
                 f"{metric}: {online:.3f} live vs {offline:.3f} offline",
                 "Live quality (realized from outcomes, or estimated by CBPE before they arrive) against the holdout.",
                 _url("monitoring:dashboard", f.project.slug, d.slug), f"Monitoring of {d.slug}", drop)


MLTS_AUTO = {
    "mlts.data.1": mlts_data_1, "mlts.model.1": mlts_model_1, "mlts.model.2": mlts_model_2,
    "mlts.infra.1": mlts_infra_1, "mlts.infra.3": mlts_infra_3, "mlts.infra.4": mlts_infra_4,
    "mlts.infra.6": mlts_infra_6, "mlts.infra.7": mlts_infra_7, "mlts.monitor.2": mlts_monitor_2,
    "mlts.monitor.3": mlts_monitor_3, "mlts.monitor.4": mlts_monitor_4, "mlts.monitor.6": mlts_monitor_6,
    "mlts.monitor.7": mlts_monitor_7,
}


def _answer_fields(a) -> dict:
    if a is None:
        return {}
    return {"answer": a.answer, "note": a.note, "answered_by": a.answered_by.username if a.answered_by else "",
            "answered_at": a.answered_at.isoformat() if a.answered_at else ""}


def _people_item(f: Facts, key: str) -> ItemResult:
    section, title, description = PEOPLE_ITEMS[key]
    a = f.answers.get(key)
    fields = {**_answer_fields(a), "extra": {"choices": scoring.PEOPLE_ANSWERS}}
    if a is None or not a.answer:
        return ItemResult(key=key, section=section, title=title, status=FAIL, figure="not answered yet",
                          detail=description, source="none", answerable=True, **fields)
    return ItemResult(key=key, section=section, title=title, status=scoring.ANSWER_STATUS.get(a.answer, FAIL),
                      figure=scoring.ANSWER_LABELS.get(a.answer, a.answer), detail=description, source="answer",
                      answerable=True, **fields)


def mlts_item(f: Facts, test: mltestscore.MLTest) -> ItemResult:
    a = f.answers.get(test.key)
    fields = _answer_fields(a)
    common = {"key": test.key, "section": test.group, "title": test.name,
              "extra": {"group": test.group, "auto": test.auto, "choices": scoring.MLTS_ANSWERS}}
    decided = MLTS_AUTO[test.key](f) if test.key in MLTS_AUTO else None
    if decided is not None:
        return ItemResult(**common, source="auto", answerable=False, **decided, **fields)
    hint = (" The portal decides this test from its records once they exist; until then, people answer it."
            if test.auto else "")
    if a is None or not a.answer:
        return ItemResult(**common, status=FAIL, figure="not answered yet", detail=test.description + hint,
                          source="none", answerable=True, **fields)
    return ItemResult(**common, status=scoring.ANSWER_STATUS.get(a.answer, FAIL),
                      figure=scoring.ANSWER_LABELS.get(a.answer, a.answer), detail=test.description + hint,
                      source="answer", answerable=True, **fields)


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

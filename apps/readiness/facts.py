"""What the readiness items read: thresholds, the loaded facts of one project (``facts_load``) and small
shared lookups, including the capabilities other apps add later (looked up by model name, see
``optional_model``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.apps import apps as django_apps
from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Q, Sum
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.deployments.models import (
    Deployment,
    DeploymentEvent,
    DeploymentStatus,
    PredictionLog,
    PredictionMinuteStat,
)
from apps.monitoring.models import (
    MonitoringWindow,
    MonitorSettings,
    WindowKind,
)
from apps.projects.models import AuditEvent, Membership, Project, Role
from apps.registry.models import ModelVersion, VersionStatus

from . import mltestscore

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
    """A model another app may add later (e.g. ("releases", "ShadowRun")), or None — also None while
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
        if (getattr(f, "many_to_one", False) or getattr(f, "one_to_one", False)) and f.related_model is target \
                and not f.auto_created:
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
    return optional_model(("releases", "ShadowRun"))


def promotion_request_model():
    return optional_model(("releases", "PromotionRequest"))


def retraining_policy_model():
    return optional_model(("training", "RetrainingPolicy"))


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
    # The large JSON of versions (profiles, reports) is not loaded; flags say whether it exists.
    heavy = ("reference_profile", "validation_report", "params", "library_versions", "model_card", "uploader_metrics")
    flags = {"has_profile": ~Q(reference_profile={}), "has_report": ~Q(validation_report={})}
    facts.ready_versions = list(ModelVersion.objects.filter(model__project=project, status=VersionStatus.READY)
                                .select_related("model", "training_set").defer(*heavy)
                                .annotate(**{k: ExpressionWrapper(q, output_field=BooleanField())
                                             for k, q in flags.items()}))
    facts.deployments = list(Deployment.objects.filter(project=project)
                             .select_related("owner", "registered_model__feature_set", "production_version__model",
                                             "production_version__training_set")
                             .defer(*[f"production_version__{h}" for h in heavy]))
    served = dict(ModelVersion.objects.filter(pk__in=[d.production_version_id for d in facts.deployments])
                  .annotate(**{k: ExpressionWrapper(q, output_field=BooleanField()) for k, q in flags.items()})
                  .values_list("pk", "has_profile"))
    reports = dict(ModelVersion.objects.filter(pk__in=list(served)).exclude(validation_report={})
                   .values_list("pk", "status"))
    for d in facts.deployments:
        d.production_version.has_profile = bool(served.get(d.production_version_id))
        d.production_version.has_report = d.production_version_id in reports
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
    """When each version first reached production on each deployment: the deploy event of a deployment that
    went live at creation, the first resume of one created paused (its first version went live, e.g. by an
    approved promotion request), and every version change / promotion (rollbacks return an old version)."""
    if not deployments:
        return []
    by_id = {d.pk: d for d in deployments}
    paused_at_creation = set()
    for ev in AuditEvent.objects.filter(verb="deployment.deploy", target_id__in=[str(i) for i in by_id]):
        if ev.details.get("live") is False:
            paused_at_creation.add(int(ev.target_id))
    seen, out = set(), []
    events = (DeploymentEvent.objects.filter(deployment_id__in=by_id, kind__in=["deploy", "resume", "version", "promote"],
                                             version__isnull=False)
              .select_related("version").order_by("created_at", "id"))
    for ev in events:
        if ev.kind == "deploy" and ev.deployment_id in paused_at_creation:
            continue
        if ev.kind == "resume" and ev.deployment_id not in paused_at_creation:
            continue  # a pause and resume later on does not bring a version to production
        key = (ev.deployment_id, ev.version_id)
        if key in seen:
            continue
        seen.add(key)
        out.append((by_id[ev.deployment_id], ev.version, ev.created_at, ev.kind))
    return out


def version_lineage(v: ModelVersion) -> str:
    """full: names its point-in-time training set (which pins feature set and source versions);
    partial: only a hash / name of its training data or a parent; none otherwise."""
    if v.training_set_id and getattr(v.training_set, "sha256", ""):
        return "full"
    if v.training_data_sha256 or v.training_data_name or v.parent_id:
        return "partial"
    return "none"


def _latest_skew(f: Facts):
    w = (MonitoringWindow.objects.filter(deployment__project=f.project).exclude(skew={})
         .select_related("deployment").order_by("-end", "-id").first())
    if w is None or not w.skew:
        return None, None
    values = [v for v in w.skew.values() if isinstance(v, (int, float))]
    return (max(values) if values else None), w


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


def _answer_fields(a) -> dict:
    if a is None:
        return {}
    return {"answer": a.answer, "note": a.note, "answered_by": a.answered_by.username if a.answered_by else "",
            "answered_at": a.answered_at.isoformat() if a.answered_at else ""}


def _reviewers(project: Project) -> list:
    return list(Membership.objects.filter(project=project, role__in=[Role.REVIEWER, Role.OWNER])
                .values_list("user_id", flat=True))


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


def _served_versions(f: Facts) -> list:
    versions = {d.production_version_id: d.production_version for d in f.served}
    return list(versions.values())

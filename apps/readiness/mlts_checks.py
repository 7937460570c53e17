"""The ML Test Score tests the portal decides from its records (``MLTS_AUTO``), and ``mlts_item``, which
falls back to people's answers where the records cannot decide."""

from __future__ import annotations

from django.db.models import Q

from apps.deployments.models import (
    Deployment,
)
from apps.monitoring.models import (
    Alert,
    AlertStatus,
    MonitoringWindow,
)
from apps.registry.models import ModelVersion, VersionStatus

from . import mltestscore, scoring
from .facts import (
    ERROR_RATE_PASS,
    ERROR_RATE_WARN,
    LATENCY_RATIO_PASS,
    LATENCY_RATIO_WARN,
    METRIC_GAP_PASS,
    METRIC_GAP_WARN,
    QUALITY_PASS,
    QUALITY_WARN,
    SKEW_PASS,
    SKEW_WARN,
    STALE_PASS_DAYS,
    STALE_WARN_DAYS,
    Facts,
    _answer_fields,
    _candidate_fk,
    _fk_name,
    _latest_skew,
    _online_metric,
    _promotion_approved,
    _served_versions,
    _url,
    shadow_run_model,
    version_lineage,
)
from .scoring import FAIL, PASS, WARN, ItemResult


def _auto(status, figure, detail, url="", label="", value=None):
    return {"status": status, "figure": figure, "detail": detail, "evidence_url": url, "evidence_label": label,
            "value": value}


def mlts_data_1(f: Facts):
    versions = _served_versions(f) or f.ready_versions
    if not versions:
        return None
    ok = [v for v in versions if v.model.input_contract and v.has_profile]
    value = len(ok) / len(versions)
    return _auto(PASS if value == 1 else WARN if ok else FAIL, f"{len(ok)} of {len(versions)} versions",
                 "Versions with a typed input contract and a reference profile of every input (checked on every "
                 "drift window).", _url("registry:model-list", f.project.slug), "Models", value)


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
    ok = [v for v in versions if v.status == VersionStatus.READY and v.has_report]
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

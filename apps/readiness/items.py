"""The core readiness items: the handoff, the feature gap, the monitoring vacuum (one function each)."""

from __future__ import annotations

from datetime import timedelta

from apps.deployments.models import (
    Deployment,
    PredictionLog,
)
from apps.features.models import FeatureView
from apps.monitoring.models import (
    Alert,
    AlertRule,
    AlertStatus,
    Outcome,
)

from . import scoring
from .facts import (
    LABEL_LATENCY_PASS_DAYS,
    LEAD_TIME_PASS_DAYS,
    LEAD_TIME_WARN_DAYS,
    LINEAGE_PASS,
    LINEAGE_WARN,
    ONLINE_INPUTS_PASS,
    ONLINE_INPUTS_WARN,
    OUTCOME_DAYS,
    OUTCOMES_PASS_SHARE,
    PEOPLE_ITEMS,
    SKEW_PASS,
    SKEW_WARN,
    TRAFFIC_DAYS,
    Facts,
    _answer_fields,
    _fk_name,
    _latest_skew,
    _reviewers,
    _schedule_state,
    _url,
    retraining_policy_model,
    version_lineage,
)
from .scoring import FAIL, PASS, WARN, ItemResult


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
    url = _url("training:retraining-list", f.project.slug) or _url("monitoring:overview", f.project.slug)
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

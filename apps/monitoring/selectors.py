"""Reads for pages, API and /metrics. Everything here reads the precomputed per-window aggregates
(``MonitoringWindow``, ``FeatureWindowStat``) and alerts — never the raw prediction log."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from apps.common.errors import NotFound
from apps.deployments.models import Deployment
from apps.projects.permissions import can

from .models import (
    Alert,
    AlertStatus,
    FeatureWindowStat,
    MonitoringWindow,
    MonitorSettings,
    ThresholdOverride,
)

ACTIVE = [AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]
WINDOW_CHOICES = (12, 24, 96, 672)


def window_list(*, deployment: Deployment) -> QuerySet[MonitoringWindow]:
    return MonitoringWindow.objects.filter(deployment=deployment).order_by("-end", "-id")


def recent_windows(*, deployment: Deployment, count: int) -> list[MonitoringWindow]:
    return list(reversed(window_list(deployment=deployment).defer("quality")[:count]))


def alert_list(*, deployment: Deployment | None = None, project=None, status: str = "") -> QuerySet[Alert]:
    qs = Alert.objects.select_related("rule", "deployment", "acknowledged_by").prefetch_related("notifications")
    if deployment is not None:
        qs = qs.filter(deployment=deployment)
    if project is not None:
        qs = qs.filter(deployment__project=project)
    if status == "active":
        qs = qs.filter(status__in=ACTIVE)
    elif status:
        qs = qs.filter(status=status)
    return qs.order_by("-opened_at", "-id")


def alert_get_for_user(*, user, alert_id: int, project=None) -> Alert:
    alert = Alert.objects.select_related("deployment__project", "rule").filter(pk=alert_id).first()
    if alert is None or (project is not None and alert.deployment.project_id != project.pk) \
            or not can(user, alert.deployment.project, "monitoring.view"):
        raise NotFound("No such alert")
    return alert


def alert_out(alert: Alert) -> dict:
    return {"id": alert.pk, "rule": alert.rule.name, "metric": alert.rule.metric, "status": alert.status,
            "severity": alert.severity, "value": alert.value, "message": alert.message, "opened_at": alert.opened_at,
            "acknowledged_by": alert.acknowledged_by.username if alert.acknowledged_by else None,
            "resolved_at": alert.resolved_at, "snoozed_until": alert.snoozed_until}


def project_health(*, project) -> list[dict]:
    """One row per deployment: latest window, open alerts, a health verdict."""
    rows = []
    deployments = list(Deployment.objects.filter(project=project).select_related("production_version",
                                                                                   "registered_model"))
    active = {}
    for a in Alert.objects.filter(deployment__project=project, status__in=ACTIVE).only("deployment_id", "severity"):
        active.setdefault(a.deployment_id, []).append(a.severity)
    for dep in deployments:
        latest = window_list(deployment=dep).first()
        sev = active.get(dep.pk, [])
        if "critical" in sev:
            health, badge = "critical", "bad"
        elif sev or (latest and latest.dataset_drifted):
            health, badge = "attention", "warn"
        elif latest is None:
            health, badge = "no data", "info"
        else:
            health, badge = "healthy", "ok"
        rows.append({"deployment": dep, "latest": latest, "alerts": len(sev), "health": health, "badge": badge,
                     "estimated": (latest.estimated.get("accuracy") or {}).get("value") if latest else None,
                     "realized": (latest.realized.get("accuracy") or {}).get("value") if latest else None})
    return rows


# --- figures (plain plotly dicts) ------------------------------------------------------------------


def _label(w: MonitoringWindow) -> str:
    return timezone.localtime(w.end).strftime("%m-%d %H:%M")


def _labels(windows: list[MonitoringWindow]) -> list[str]:
    """Category labels for the x axis, one per window. Plotly merges equal categories, so windows that
    end in the same minute (count windows under heavy traffic) get seconds, then their sequence number."""
    labels = [_label(w) for w in windows]
    if len(set(labels)) < len(labels):
        labels = [timezone.localtime(w.end).strftime("%m-%d %H:%M:%S") for w in windows]
    if len(set(labels)) < len(labels):
        labels = [f"{label} #{i}" for i, label in enumerate(labels, 1)]
    return labels


def drift_heatmap(windows: list[MonitoringWindow], stats: list[FeatureWindowStat]) -> dict:
    features = sorted({s.feature for s in stats})
    index = {w.pk: i for i, w in enumerate(windows)}
    z = [[None] * len(windows) for _ in features]
    text = [[""] * len(windows) for _ in features]
    fi = {f: i for i, f in enumerate(features)}
    for s in stats:
        z[fi[s.feature]][index[s.window_id]] = round(s.score, 4)
        text[fi[s.feature]][index[s.window_id]] = "drifted" if s.drifted else ""
    return {"data": [{"type": "heatmap", "z": z, "x": _labels(windows), "y": features, "text": text,
                      "colorscale": "YlOrRd", "reversescale": True, "zmin": 0, "zmax": 0.5,
                      "hovertemplate": "%{y} @ %{x}<br>score %{z}<br>%{text}<extra></extra>",
                      "colorbar": {"title": {"text": "score"}}}],
            "layout": {"height": 120 + 28 * max(len(features), 1), "xaxis": {"type": "category"},
                       "yaxis": {"automargin": True}}}


def drift_over_time(windows: list[MonitoringWindow]) -> dict:
    x = _labels(windows)
    return {"data": [
        {"type": "scatter", "mode": "lines+markers", "name": "share of drifted features", "x": x,
         "y": [w.share_drifted for w in windows]},
        {"type": "scatter", "mode": "lines+markers", "name": "domain classifier AUC", "x": x,
         "y": [w.domain_auc for w in windows]},
        {"type": "scatter", "mode": "lines+markers", "name": "prediction drift score", "x": x,
         "y": [w.prediction_score for w in windows]},
        {"type": "scatter", "mode": "lines+markers", "name": "PCA reconstruction error (numeric block)", "x": x,
         "y": [(w.multivariate or {}).get("error") for w in windows], "line": {"dash": "dashdot"}},
    ], "layout": {"height": 280, "xaxis": {"type": "category"}, "yaxis": {"rangemode": "tozero"},
                  "legend": {"orientation": "h"}}}


def performance_over_time(windows: list[MonitoringWindow], metric: str = "accuracy") -> dict:
    x = _labels(windows)
    data = []
    for source, dash in (("estimated", "dot"), ("realized", "solid")):
        vals = [(getattr(w, source).get(metric) or {}) for w in windows]
        data.append({"type": "scatter", "mode": "lines+markers", "name": f"{source} {metric}", "x": x,
                     "y": [v.get("value") for v in vals], "line": {"dash": dash},
                     "error_y": {"type": "data", "symmetric": False,
                                 "array": [(v["high"] - v["value"]) if v.get("high") is not None else None
                                           for v in vals],
                                 "arrayminus": [(v["value"] - v["low"]) if v.get("low") is not None else None
                                                for v in vals]}})
    has_values = any(v is not None for trace in data for v in trace["y"])
    for bound in ("lower_threshold", "upper_threshold"):  # learned from the reference's chunks
        y = [((w.estimated or {}).get(metric) or (w.realized or {}).get(metric) or {}).get(bound) for w in windows]
        if any(v is not None for v in y):
            data.append({"type": "scatter", "mode": "lines", "name": bound.replace("_", " "), "x": x, "y": y,
                         "line": {"dash": "dash", "color": "#c23030", "width": 1}})
    return {"data": data, "has_values": has_values,
            "layout": {"height": 280, "xaxis": {"type": "category"}, "legend": {"orientation": "h"}}}


def skew_over_time(windows: list[MonitoringWindow]) -> dict:
    """Training-serving skew per feature (mismatch rate of the window's own rows), one line per feature."""
    x = _labels(windows)
    features = sorted({f for w in windows for f in (w.skew or {})})
    return {"data": [{"type": "scatter", "mode": "lines+markers", "name": f, "x": x,
                      "y": [(w.skew or {}).get(f) for w in windows]} for f in features],
            "has_values": bool(features),
            "layout": {"height": 260, "xaxis": {"type": "category"}, "legend": {"orientation": "h"},
                       "yaxis": {"rangemode": "tozero", "tickformat": ".0%", "title": {"text": "mismatch rate"}}}}


def volume_latency(windows: list[MonitoringWindow]) -> dict:
    x = _labels(windows)
    return {"data": [{"type": "bar", "name": "predictions", "x": x, "y": [w.volume for w in windows],
                      "marker": {"color": "#9db4d6"}},
                     {"type": "scatter", "mode": "lines+markers", "name": "latency p95 (ms)", "x": x,
                      "y": [w.latency_p95_ms for w in windows], "yaxis": "y2"}],
            "layout": {"height": 260, "xaxis": {"type": "category"}, "legend": {"orientation": "h"},
                       "margin": {"t": 30, "r": 60, "b": 40, "l": 60}, "yaxis": {"title": {"text": "predictions"}},
                       "yaxis2": {"overlaying": "y", "side": "right", "rangemode": "tozero",
                                  "title": {"text": "p95 ms"}}}}


def _edge(value: float, unit: str | None = None) -> str:
    """A bin edge as the axis shows it: 3 significant digits, or a UTC date/time for a ``datetime`` feature
    (profiled as seconds since 1970), to the minute unless every edge is at midnight."""
    if unit == "epoch_seconds":
        from datetime import UTC, datetime

        try:
            when = datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return f"{value:.3g}"
        return when.strftime("%Y-%m-%d") if (when.hour, when.minute, when.second) == (0, 0, 0) \
            else when.strftime("%Y-%m-%d %H:%M")
    return f"{value:.3g}"


def histogram_figure(kind: str, histogram: dict, title: str = "") -> dict:
    """Reference vs current as shares of rows per bin: the reference's decile bins (numeric) or categories.

    Numeric bins are drawn side by side with equal widths and labelled with their value ranges, so a
    distribution of any shape (a confident classifier's scores piled up near 0 and 1, say) stays readable:
    the reference puts about a tenth of its rows in each decile bin, and the current window's bars show
    where it moved."""
    ref = [float(v) for v in (histogram.get("reference") or [])]
    cur = [float(v) for v in (histogram.get("current") or [])]
    rs, cs = (sum(ref) or 1.0), (sum(cur) or 1.0)
    xaxis: dict
    if kind == "numeric":
        edges = histogram.get("edges") or []
        unit = histogram.get("unit")
        names = [f"{_edge(edges[i], unit)} to {_edge(edges[i + 1], unit)}" for i in range(len(edges) - 1)]
        axis_title = f"{title or 'value'} ({'UTC, ' if unit == 'epoch_seconds' else ''}reference decile bins)"
    else:
        names = [str(c) for c in histogram.get("categories") or []]
        axis_title = title or "category"
    n = min(len(names), len(ref), len(cur)) if cur else min(len(names), len(ref))
    names = names[:n]
    if kind == "numeric":
        # bars at their bin's position; the axis names at most 6 bin edges, level (a range per bar, rotated,
        # crowded the axis); each bar's range is in its hover text and the summary
        step = max(1, -(-n // 5))
        marks = list(range(0, n + 1, step))
        x = list(range(n))
        xaxis = {"type": "linear", "range": [-0.5, n - 0.5], "tickangle": 0, "tickvals": [i - 0.5 for i in marks],
                 "ticktext": [_edge(edges[i], unit) for i in marks], "zeroline": False, "title": {"text": axis_title}}
    else:
        x = names
        xaxis = {"type": "category", "title": {"text": axis_title}, "tickangle": -30, "automargin": True}
    ref_share = [r / rs for r in ref[:n]]
    cur_share = [c / cs for c in cur[:n]] if cur else []
    summary = f"Share of rows per bin of {title or 'the value'}, reference vs current window"
    if cur_share and n:
        i = max(range(n), key=lambda k: abs(cur_share[k] - ref_share[k]))
        summary += (f"; the largest difference is in {names[i]}: {cur_share[i]:.0%} of the current window vs "
                    f"{ref_share[i]:.0%} of the reference")
    hover = "%{customdata}: %{y:.1%}<extra>%{fullData.name}</extra>"
    data = [{"type": "bar", "name": "reference", "x": x, "y": ref_share, "marker": {"color": "#7b8794"},
             "customdata": names, "hovertemplate": hover}]
    if cur_share:
        data.append({"type": "bar", "name": "current window", "x": x, "y": cur_share,
                     "marker": {"color": "#d9822b"}, "customdata": names, "hovertemplate": hover})
    return {"data": data, "summary": summary + ".",
            "layout": {"height": 300, "barmode": "group", "bargap": 0.15,
                       "xaxis": xaxis,
                       "yaxis": {"title": {"text": "share of rows"}, "tickformat": ".0%", "rangemode": "tozero"},
                       "legend": {"orientation": "h"}}}


def feature_over_time(windows: list[MonitoringWindow], stats: list[FeatureWindowStat]) -> dict:
    by_window = {s.window_id: s for s in stats}
    x = _labels(windows)
    rows = [by_window.get(w.pk) for w in windows]
    kind = next((r.kind for r in rows if r), "numeric")
    keys = (("wasserstein_normalized", "Wasserstein / ref sd"), ("psi", "PSI"), ("ks_statistic", "KS D")) \
        if kind == "numeric" else (("js_distance", "JS distance"), ("unseen_rate", "unseen share"))
    return {"data": [{"type": "scatter", "mode": "lines+markers", "name": label, "x": x,
                      "y": [(r.stats.get(key) if r else None) for r in rows]} for key, label in keys],
            "layout": {"height": 260, "xaxis": {"type": "category"}, "legend": {"orientation": "h"}}}


def dashboard_context(*, deployment: Deployment, count: int, feature: str | None = None) -> dict:
    windows = recent_windows(deployment=deployment, count=count)
    stats = list(FeatureWindowStat.objects.filter(window__in=[w.pk for w in windows])
                 .only("window_id", "feature", "kind", "score", "drifted"))
    latest = windows[-1] if windows else None
    features = sorted({s.feature for s in stats})
    feature = feature if feature in features else (features[0] if features else None)
    ctx = {"windows": windows, "latest": latest, "features": features, "feature": feature, "count": count,
           "window_choices": WINDOW_CHOICES}
    if windows:
        metric = "accuracy" if deployment.registered_model.task != "regression" else "mae"
        ctx.update({"fig_heatmap": drift_heatmap(windows, stats), "fig_drift": drift_over_time(windows),
                    "fig_perf": performance_over_time(windows, metric), "fig_volume": volume_latency(windows),
                    "fig_skew": skew_over_time(windows), "perf_metric": metric,
                    "latest_estimated": (latest.estimated or {}).get(metric) or {},
                    "latest_realized": (latest.realized or {}).get(metric) or {}})
        if latest.prediction_stats:
            ctx["fig_prediction"] = histogram_figure(latest.prediction_stats.get("kind", "numeric"),
                                                     latest.prediction_stats.get("histogram", {}),
                                                     "prediction")
        ctx["latest_features"] = list(latest.features.order_by("-drifted", "-score"))
    if feature:
        ctx.update(feature_context(deployment=deployment, windows=windows, feature=feature))
    return ctx


def feature_context(*, deployment: Deployment, windows: list[MonitoringWindow], feature: str) -> dict:
    order = {w.pk: i for i, w in enumerate(windows)}
    stats = list(FeatureWindowStat.objects.filter(window__in=list(order), feature=feature).defer("histogram"))
    if not stats:
        return {"feature": feature}
    newest = max(stats, key=lambda s: order[s.window_id])
    latest = FeatureWindowStat.objects.select_related("window").get(pk=newest.pk)  # the one histogram shown
    shown = []
    for key, value in latest.stats.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        shown.append((key.replace("_", " "), value))
    return {"feature": feature, "feature_stat": latest, "feature_stats_shown": shown,
            "fig_feature_hist": histogram_figure(latest.kind, latest.histogram, feature),
            "fig_feature_time": feature_over_time(windows, stats)}


def overrides_for(*, deployment: Deployment) -> list[ThresholdOverride]:
    return list(ThresholdOverride.objects.filter(deployment=deployment).select_related("created_by").order_by("feature"))


def settings_out(*, deployment: Deployment) -> dict:
    from dataclasses import asdict

    from .drift import Thresholds

    ms, _ = MonitorSettings.objects.get_or_create(deployment=deployment)
    return {"window_kind": ms.window_kind, "window_minutes": ms.window_minutes, "window_count": ms.window_count,
            "schedule_enabled": ms.schedule_enabled, "thresholds": ms.thresholds,
            "effective_thresholds": asdict(Thresholds.from_dict(ms.thresholds)),
            "calibration_source": ms.calibration_source,
            "overrides": [{"feature": o.feature, "values": o.values, "reason": o.reason,
                           "created_by": o.created_by.username if o.created_by else None}
                          for o in overrides_for(deployment=deployment)]}


def outcome_labels_for_requests(*, deployment: Deployment, request_ids) -> dict[str, object]:
    """``{str(request_id): label}`` for the logged requests whose ground truth is known (release evidence)."""
    from .models import Outcome

    out: dict[str, object] = {}
    ids = list(request_ids)
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        for rid, label in Outcome.objects.filter(deployment=deployment, request_id__in=chunk).values_list(
                "request_id", "label"):
            out[str(rid)] = label
    return out


def open_critical_alert_messages(*, deployment: Deployment) -> list[str]:
    """The deployment's open or acknowledged critical alerts, newest first (a promotion gate)."""
    return [f"{a.severity}: {a.message}" for a in Alert.objects.filter(
        deployment=deployment, severity="critical", status__in=["open", "acknowledged"]).order_by("-opened_at")]

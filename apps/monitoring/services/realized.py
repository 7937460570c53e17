"""Realized performance of each window from its own rows' outcomes, with thresholds learned from the
reference; refreshed for every window that receives labels."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from apps.deployments.models import Deployment

from .. import drift, performance
from ..models import MonitoringWindow, MonitorSettings, Outcome
from .alerts import alert_rules_evaluate
from .common import _f, window_rows_q
from .reference import binary_reference, label_text, regression_reference


def _metric_dict(values: dict) -> dict:
    return {k: {"value": _f(v.value), "low": _f(v.low), "high": _f(v.high), "n": v.n} for k, v in values.items()}


def _banded_dict(values: dict) -> dict:
    """``BandedMetric``s as stored on a window (and shown by the API and the dashboard)."""
    return {k: {"value": _f(v.value), "low": _f(v.low), "high": _f(v.high), "n": v.n,
                "sampling_error": _f(v.sampling_error), "lower_threshold": _f(v.lower_threshold),
                "upper_threshold": _f(v.upper_threshold), "alert": v.alert} for k, v in values.items()}


def _chunk_size(window: MonitoringWindow, ms: MonitorSettings) -> int:
    """Reference chunks have the size of the deployment's count windows (of this window for time windows)."""
    return ms.window_count if ms.window_kind == "count" else max(window.n_rows, 100)


def _with_thresholds(metrics: dict, thresholds: dict) -> dict:
    for name, entry in metrics.items():
        lo, hi = thresholds.get(name, (None, None))
        entry["lower_threshold"], entry["upper_threshold"] = _f(lo), _f(hi)
        v = entry.get("value")
        entry["alert"] = bool(v is not None and ((lo is not None and v < lo) or (hi is not None and v > hi)))
    return metrics


def _realized_fill(window: MonitoringWindow, ms: MonitorSettings | None = None) -> None:
    """The window's own rows' outcomes (joined by request id at ingestion; each row in exactly one
    scheduled window), scored exactly as scikit-learn would."""
    from .config import monitor_settings_for

    ms = ms or monitor_settings_for(window.deployment)
    outcomes = list(Outcome.objects.filter(window_rows_q(window, time_field="predicted_at"),
                                           deployment=window.deployment).values_list("label", "output", "score"))
    window.n_labelled = len(outcomes)
    if not outcomes:
        window.realized = {}
        return
    version = window.version or window.deployment.production_version
    th = drift.Thresholds.from_dict(ms.thresholds)
    task = window.deployment.registered_model.task
    labels = [o[0] for o in outcomes]
    preds = [o[1] for o in outcomes]
    if task == "regression":
        ok = [(float(y), float(p)) for y, p in zip(labels, preds, strict=True)
              if isinstance(y, (int, float)) and isinstance(p, (int, float))]
        if ok:
            window.realized = _metric_dict(performance.regression_metrics([o[0] for o in ok], [o[1] for o in ok]))
            ref = regression_reference(version, chunk_size=_chunk_size(window, ms),
                                       k=th.threshold_sd) if version else None
            _with_thresholds(window.realized, ref.thresholds if ref else {})
        return
    y = [label_text(v) for v in labels]
    p = [label_text(v) for v in preds]
    scores = [o[2] for o in outcomes]
    classes = (version.classes if version else None) or []
    positive = label_text(classes[-1]) if len(classes) == 2 else sorted(set(y))[-1]
    use_scores = task == "binary_classification" and all(s is not None for s in scores)
    window.realized = _metric_dict(performance.classification_metrics(
        y, p, scores if use_scores else None, positive=positive))
    ref = binary_reference(version, manual=ms.calibration, chunk_size=_chunk_size(window, ms),
                           k=th.threshold_sd) if version and len(classes) == 2 else None
    _with_thresholds(window.realized, ref.thresholds if ref else {})


def performance_refresh(*, deployment_id: int, since: datetime, until: datetime) -> int:
    """Recompute realized performance of every window whose rows' request times lie in [since, until]
    (the span of the outcomes just stored — a superset of the windows that received labels); re-run
    the rules."""
    deployment = Deployment.objects.filter(pk=deployment_id).select_related("registered_model",
                                                                            "production_version").first()
    if deployment is None:
        return 0
    from .config import monitor_settings_for

    ms = monitor_settings_for(deployment)
    windows = list(MonitoringWindow.objects.filter(deployment=deployment, end__gte=since, start__lte=until)
                   .select_related("version"))
    for w in windows:
        _realized_fill(w, ms)
        w.save(update_fields=["realized", "n_labelled"])
    if windows:
        alert_rules_evaluate(deployment=deployment, now=timezone.now())
    return len(windows)

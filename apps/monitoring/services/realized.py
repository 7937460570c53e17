"""Realized performance of windows from outcomes, and the CBPE calibrator from the reference sample."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from apps.deployments.models import Deployment

from .. import performance
from ..models import MonitoringWindow, MonitorSettings, Outcome
from .alerts import alert_rules_evaluate
from .common import _f, _positive_class


def _metric_dict(values: dict) -> dict:
    return {k: {"value": _f(v.value), "low": _f(v.low), "high": _f(v.high), "n": v.n} for k, v in values.items()}


def _calibrate_from_sample(ms: MonitorSettings, sample: dict, positive) -> None:
    """CBPE calibrator from the reference profile's sample (scores + true labels), when it has both."""
    scores, labels = sample.get("score"), sample.get("label")
    if not scores or not labels or len(scores) != len(labels):
        return
    y = [1 if str(v) == str(positive) else 0 for v in labels]
    if len(set(y)) < 2 or len(y) < 50:
        return
    ms.calibration = performance.calibrator_fit(scores, y).to_dict()
    ms.calibration_source = f"reference profile sample ({len(y)} rows)"
    MonitorSettings.objects.filter(pk=ms.pk).update(calibration=ms.calibration,
                                                    calibration_source=ms.calibration_source)


def _realized_fill(window: MonitoringWindow) -> None:
    outcomes = list(Outcome.objects.filter(deployment=window.deployment, predicted_at__gte=window.start,
                                           predicted_at__lt=window.end).values_list("label", "output", "score"))
    window.n_labelled = len(outcomes)
    if not outcomes:
        window.realized = {}
        return
    task = window.deployment.registered_model.task
    labels = [o[0] for o in outcomes]
    preds = [o[1] for o in outcomes]
    if task == "regression":
        ok = [(float(y), float(p)) for y, p in zip(labels, preds, strict=True)
              if isinstance(y, (int, float)) and isinstance(p, (int, float))]
        if ok:
            window.realized = _metric_dict(performance.regression_metrics([o[0] for o in ok], [o[1] for o in ok]))
        return
    y = [str(v) for v in labels]
    p = [str(v) for v in preds]
    scores = [o[2] for o in outcomes]
    positive = _positive_class(window.deployment)
    use_scores = task == "binary_classification" and all(s is not None for s in scores)
    window.realized = _metric_dict(performance.classification_metrics(
        y, p, scores if use_scores else None, positive=str(positive) if positive is not None else sorted(set(y))[-1]))


def performance_refresh(*, deployment_id: int, since: datetime, until: datetime) -> int:
    """Recompute realized performance of the windows that late outcomes fall into; re-run the rules."""
    deployment = Deployment.objects.filter(pk=deployment_id).select_related("registered_model",
                                                                            "production_version").first()
    if deployment is None:
        return 0
    windows = list(MonitoringWindow.objects.filter(deployment=deployment, end__gt=since, start__lte=until))
    for w in windows:
        _realized_fill(w)
        w.save(update_fields=["realized", "n_labelled"])
    if windows:
        alert_rules_evaluate(deployment=deployment, now=timezone.now())
    return len(windows)

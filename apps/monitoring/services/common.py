"""Shared pieces of the monitoring services: the metric catalogue, comparators, permission check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q

from apps.common.errors import PermissionDenied
from apps.deployments import spool
from apps.deployments.models import Deployment
from apps.projects.permissions import can

from .. import drift
from ..models import Comparator

MIN_WINDOW_MINUTES = 15
CHECK_MAX_MINUTES = 60 * 24 * 31  # an on-demand drift check looks back at most this far
SNOOZE_MAX_MINUTES = 60 * 24 * 14
OVERRIDE_KEYS = ("alpha", "wasserstein", "js", "psi")  # what a per-feature threshold override may set
MAX_WINDOWS_PER_TICK = 96
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "r2")
METRICS: dict[str, str] = {
    "share_drifted": "Share of drifted features",
    "n_drifted": "Number of drifted features",
    "domain_auc": "Domain-classifier ROC AUC (multivariate drift)",
    "prediction_score": "Prediction distribution drift score",
    "error_rate": "Error rate of prediction requests",
    "latency_p95_ms": "Latency p95 (ms)",
    "volume": "Predictions in the window",
    "skew_rate": "Training-serving skew: highest per-feature mismatch rate",
    "feature_sla_breaches": "Feature views past their freshness SLA (of the model's feature set)",
    "feature_staleness_ratio": "Highest age / freshness SLA of the model's feature views (1 = at the SLA)",
    **{f"estimated_{m}": f"Estimated {m} (CBPE)" for m in ("accuracy", "precision", "recall", "f1", "roc_auc")},
    **{f"realized_{m}": f"Realized {m}" for m in CLASSIFICATION_METRICS + REGRESSION_METRICS},
}
# What alert_rule_create accepts as a metric (a catalogue name or drift:<feature>), as the API schema's pattern.
METRIC_PATTERN = "^(?:" + "|".join(METRICS) + r"|drift:[^\u0000]{1,194})$"  # metric: 200 chars
COMPARE = {Comparator.GT: lambda v, t: v > t, Comparator.GTE: lambda v, t: v >= t,
           Comparator.LT: lambda v, t: v < t, Comparator.LTE: lambda v, t: v <= t}


def _require(user, deployment: Deployment, action: str) -> None:
    if not can(user, deployment.project, action):
        raise PermissionDenied(f"Your role in {deployment.project.name} does not allow {action}")


def _f(value) -> float | None:
    return drift.clean_float(value) if value is not None else None


def _positive_score(probabilities, positive) -> float | None:
    if not isinstance(probabilities, dict) or len(probabilities) != 2:
        return None
    key = str(positive) if positive is not None else sorted(probabilities)[-1]
    value = probabilities.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def _positive_class(deployment: Deployment):
    classes = deployment.production_version.classes or []
    return classes[-1] if len(classes) == 2 else None


def rows_q(*, start, end, first_request_id=None, last_request_id=None, time_field: str = "created_at") -> Q:
    """The rows of a window. Count windows (request ids given): every row whose (request time, request
    id) lies between (start, first_request_id) and (end, last_request_id), both inclusive; time windows:
    request time in [start, end). ``time_field`` is ``created_at`` (prediction log) or ``predicted_at``
    (outcomes, which copy the prediction's request time)."""
    if first_request_id is None or last_request_id is None:
        return Q(**{f"{time_field}__gte": start, f"{time_field}__lt": end})
    lo = Q(**{f"{time_field}__gt": start}) | Q(**{time_field: start, "request_id__gte": first_request_id})
    hi = Q(**{f"{time_field}__lt": end}) | Q(**{time_field: end, "request_id__lte": last_request_id})
    return lo & hi


def window_rows_q(window, *, time_field: str = "created_at") -> Q:
    return rows_q(start=window.start, end=window.end, first_request_id=window.first_request_id,
                  last_request_id=window.last_request_id, time_field=time_field)


def log_watermark(now: datetime, *, bounded: bool = True) -> datetime:
    """The request time up to which the prediction log is complete, as far as monitoring can tell:
    ``MONITORING_LOG_SETTLE_SECONDS`` before now, and before the oldest record still waiting in this
    host's serving spool. ``bounded`` (windows): never more than ``MONITORING_LOG_MAX_WAIT_SECONDS``
    back — a stuck drainer must not stop monitoring; rows later than that land in their closed window's
    span, where their outcomes still count, but the window's drift figures are not recomputed. Pending
    outcomes use the unbounded mark: a label is never declared unknown while its row may still be spooled."""
    mark = now - timedelta(seconds=settings.MONITORING_LOG_SETTLE_SECONDS)
    try:
        pending = spool.oldest_pending(settings.SERVING_SPOOL_DIR)
    except OSError:
        pending = None
    if pending is not None:
        mark = min(mark, datetime.fromtimestamp(pending, UTC))
    if not bounded:
        return mark
    return max(mark, now - timedelta(seconds=settings.MONITORING_LOG_MAX_WAIT_SECONDS))

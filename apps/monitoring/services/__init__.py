"""Every write and rule of monitoring, by concern: outcomes, windows (drift + performance), realized
performance, skew, settings, alerts, notifications.

The math is in ``drift.py`` and ``performance.py``; these modules load data, call them and store the
per-window aggregates that pages and ``/metrics`` read. Callers import from this package.
"""

from .alerts import (
    _alert_for_user,
    _validate_metric,
    alert_acknowledge,
    alert_rule_create,
    alert_rule_enabled_set,
    alert_rule_update,
    alert_rules_evaluate,
    alert_snooze,
    window_metric,
)
from .common import (
    CLASSIFICATION_METRICS,
    COMPARE,
    MAX_WINDOWS_PER_TICK,
    METRICS,
    MIN_WINDOW_MINUTES,
    REGRESSION_METRICS,
)
from .config import calibration_fit, monitor_settings_for, monitor_settings_update, threshold_override_set
from .notifications import alert_rule_webhook_test, notification_deliver, webhook_signature
from .outcomes import (
    MAX_OUTCOMES,
    outcomes_ingest,
    outcomes_ingest_request,
    outcomes_ingest_run,
    outcomes_pending_match,
)
from .realized import performance_refresh
from .skew import SKEW_SAMPLE, skew_check
from .start import monitoring_start
from .windows import (
    _floor,
    drift_check_request,
    drift_check_run,
    due_time_windows,
    log_watermark,
    monitoring_tick,
    window_compute,
)

__all__ = [
    "CLASSIFICATION_METRICS", "COMPARE", "MAX_OUTCOMES", "MAX_WINDOWS_PER_TICK", "METRICS", "MIN_WINDOW_MINUTES",
    "REGRESSION_METRICS", "SKEW_SAMPLE", "_alert_for_user", "_floor", "_validate_metric", "alert_acknowledge",
    "alert_rule_create", "alert_rule_enabled_set", "alert_rule_webhook_test", "alert_rule_update", "alert_rules_evaluate", "alert_snooze", "calibration_fit", "drift_check_request",
    "drift_check_run", "due_time_windows", "log_watermark", "outcomes_ingest_request", "outcomes_ingest_run",
    "outcomes_pending_match", "monitor_settings_for", "monitor_settings_update",
    "monitoring_start", "monitoring_tick", "notification_deliver", "outcomes_ingest", "performance_refresh", "skew_check",
    "threshold_override_set", "webhook_signature", "window_compute", "window_metric",
]

"""Monitoring data: outcomes, per-window aggregates (what the dashboards read), alert rules, alerts.

- ``MonitorSettings``: one per deployment: window by count (every N predictions; the default, 1,000) or
  by time (minutes, ≥ 15), schedule on/off, default thresholds (``drift.Thresholds`` fields), the CBPE calibrator.
- ``ThresholdOverride``: per-feature thresholds, each with the reason someone gave.
- ``Outcome``: ground truth by prediction ``request_id`` — the prediction's time, output and score are
  copied in at ingestion, so performance windows never re-read the prediction log.
- ``MonitoringWindow`` + ``FeatureWindowStat``: the precomputed aggregates of one window (drift,
  quality, prediction distribution, volume/latency, estimated and realized performance). Pages read
  only these, never the raw log.
- ``AlertRule`` / ``Alert`` / ``Notification``: rules, their alerts (at most one open per rule, enforced
  by a partial unique constraint) and each email/webhook delivery with its status.
"""

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q


class WindowKind(models.TextChoices):
    TIME = "time", "By time"
    COUNT = "count", "By count"


class MonitorSettings(models.Model):
    deployment = models.OneToOneField("deployments.Deployment", on_delete=models.CASCADE,
                                      related_name="monitor_settings")
    # count windows by default: a new deployment's first (partial) window shows at the first tick after its
    # first predictions, instead of when the first clock-hour closes
    window_kind = models.CharField(max_length=8, choices=WindowKind.choices, default=WindowKind.COUNT)
    window_minutes = models.PositiveIntegerField(default=60)
    window_count = models.PositiveIntegerField(default=1_000)
    schedule_enabled = models.BooleanField(default=True)
    thresholds = models.JSONField(default=dict, blank=True)  # drift.Thresholds fields
    calibration = models.JSONField(default=dict, blank=True)  # performance.Calibrator.to_dict()
    calibration_source = models.CharField(max_length=200, blank=True)
    last_window_end = models.DateTimeField(null=True, blank=True)
    last_log_id = models.BigIntegerField(default=0)  # unused since count windows follow request order (below)
    # count windows: the (request time, request id) of the last prediction in the last closed window
    last_request_at = models.DateTimeField(null=True, blank=True)
    last_request_id = models.UUIDField(null=True, blank=True)
    updated_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"monitoring of {self.deployment_id}"


class ThresholdOverride(models.Model):
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    feature = models.CharField(max_length=200)
    values = models.JSONField(default=dict)  # subset of drift.Thresholds fields
    reason = models.CharField(max_length=500)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "feature"], name="threshold_override_unique")]

    def __str__(self) -> str:
        return f"{self.feature}: {self.values}"


class Outcome(models.Model):
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    request_id = models.UUIDField(unique=True)
    version_id = models.BigIntegerField(null=True)
    label = models.JSONField()
    output = models.JSONField(null=True)  # the prediction, copied from the log
    score = models.FloatField(null=True)  # binary: probability of the positive class, copied from the log
    predicted_at = models.DateTimeField()
    received_at = models.DateTimeField()
    label_latency_s = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["deployment", "predicted_at"], name="outcome_deployment_time")]

    def __str__(self) -> str:
        return str(self.request_id)


class PendingOutcome(models.Model):
    """An outcome whose request id is not (yet) in the prediction log — typically still in a serving
    process's spool. Matched by the monitoring tick when the log catches up; unknown once the log has
    caught up past ``received_at`` without it; dropped after ``MONITORING_PENDING_OUTCOME_SECONDS``."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    request_id = models.UUIDField(unique=True)
    label = models.JSONField()
    received_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["deployment", "received_at"], name="pendingoutcome_dep_time")]

    def __str__(self) -> str:
        return str(self.request_id)


class MonitoringWindow(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Scheduled"
        MANUAL = "manual", "On demand"

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey("registry.ModelVersion", null=True, on_delete=models.SET_NULL, related_name="+")
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    start = models.DateTimeField()
    end = models.DateTimeField()
    # count windows: the window holds the predictions whose (request time, request id) lies between
    # (start, first_request_id) and (end, last_request_id), both inclusive; time windows: [start, end)
    first_request_id = models.UUIDField(null=True, blank=True)
    last_request_id = models.UUIDField(null=True, blank=True)
    partial = models.BooleanField(default=False)  # the trailing, still-filling window (recomputed each tick)
    n_rows = models.PositiveIntegerField(default=0)
    n_features = models.PositiveIntegerField(default=0)
    n_drifted = models.PositiveIntegerField(default=0)
    share_drifted = models.FloatField(null=True)
    dataset_drifted = models.BooleanField(default=False)
    domain_auc = models.FloatField(null=True)
    # PCA reconstruction error of the numeric block: {error, reference_error, lower, upper, z, p_value, drifted}
    multivariate = models.JSONField(default=dict, blank=True)
    prediction_score = models.FloatField(null=True)
    prediction_drifted = models.BooleanField(default=False)
    prediction_stats = models.JSONField(default=dict, blank=True)
    quality = models.JSONField(default=dict, blank=True)  # feature -> {missing_rate, out_of_range_rate, unseen_rate}
    volume = models.PositiveIntegerField(default=0)
    error_rate = models.FloatField(null=True)
    latency_p95_ms = models.FloatField(null=True)
    estimated = models.JSONField(default=dict, blank=True)  # CBPE: metric -> {value, low, high, n}
    realized = models.JSONField(default=dict, blank=True)  # metric -> {value, low, high, n}
    n_labelled = models.PositiveIntegerField(default=0)
    skew = models.JSONField(default=dict, blank=True)  # feature -> mismatch rate of the window's own rows
    # view -> {age_seconds, sla_seconds, breached}: freshness of the feature views the model reads, at the end
    feature_freshness = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-end", "-id"]
        indexes = [models.Index(fields=["deployment", "end"], name="monwindow_deployment_end")]
        constraints = [models.UniqueConstraint(fields=["deployment", "start", "end"],
                                               condition=Q(trigger="schedule", partial=False,
                                                           first_request_id__isnull=True),
                                               name="monwindow_unique_scheduled"),
                       # count windows: many can share request times; their first request is theirs alone
                       models.UniqueConstraint(fields=["deployment", "start", "first_request_id"],
                                               condition=Q(trigger="schedule", partial=False,
                                                           first_request_id__isnull=False),
                                               name="monwindow_unique_count")]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M}"


class FeatureWindowStat(models.Model):
    window = models.ForeignKey(MonitoringWindow, on_delete=models.CASCADE, related_name="features")
    feature = models.CharField(max_length=200)
    kind = models.CharField(max_length=12)  # numeric / categorical
    score = models.FloatField()  # headline score: normalised Wasserstein or JS distance
    drifted = models.BooleanField(default=False)
    stats = models.JSONField(default=dict)  # every statistic + flags
    histogram = models.JSONField(default=dict)  # {"edges"|"categories", "reference", "current"}

    class Meta:
        constraints = [models.UniqueConstraint(fields=["window", "feature"], name="featurestat_unique")]

    def __str__(self) -> str:
        return f"{self.feature}@{self.window_id}"


class Comparator(models.TextChoices):
    GT = "gt", ">"
    GTE = "gte", "≥"
    LT = "lt", "<"
    LTE = "lte", "≤"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AlertRule(models.Model):
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    metric = models.CharField(max_length=200)  # see services.METRICS; "drift:<feature>" for one feature
    comparator = models.CharField(max_length=4, choices=Comparator.choices)
    threshold = models.FloatField()
    consecutive = models.PositiveIntegerField(default=1)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    channels = models.JSONField(default=list, blank=True)  # ["email", "webhook"]
    emails = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(blank=True, max_length=500)
    webhook_secret = models.CharField(max_length=200, blank=True)
    cooldown_minutes = models.PositiveIntegerField(default=60)
    owner = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=14, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    value = models.FloatField(null=True)
    message = models.CharField(max_length=500)
    window = models.ForeignKey(MonitoringWindow, null=True, on_delete=models.SET_NULL, related_name="+")
    opened_at = models.DateTimeField()
    acknowledged_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_value = models.FloatField(null=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["rule"], condition=Q(status__in=["open", "acknowledged"]),
                                               name="alert_one_active_per_rule")]

    def __str__(self) -> str:
        return f"{self.rule.name} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status != AlertStatus.RESOLVED


class Notification(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        SUPPRESSED = "suppressed", "Suppressed (snoozed)"

    # an alert's notification; a test of a rule's webhook ("Test webhook" on the configuration page) has
    # no alert, only its rule
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="tests")
    channel = models.CharField(max_length=10)  # email / webhook
    event = models.CharField(max_length=10)  # opened / resolved / test
    target = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.IntegerField(null=True)
    error = models.CharField(max_length=500, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel} {self.event} → {self.status}"

from datetime import datetime
from typing import Any

from ninja import Field, Schema


class OutcomesIn(Schema):
    outcomes: list[Any] = Field(..., description="Up to 100,000 objects {request_id: UUID, label: str|number|bool}")


class ConflictOut(Schema):
    request_id: str
    stored: Any
    received: Any


class LabelLatencyOut(Schema):
    median: float | None
    max: float | None


class OutcomesOut(Schema):
    received: int
    created: int
    unchanged: int
    conflicts: list[ConflictOut]
    unknown_request_ids: list[str]
    label_latency_s: LabelLatencyOut


class DriftCheckIn(Schema):
    minutes: int = 60


class JobOut(Schema):
    job_id: str
    status: str


class WindowOut(Schema):
    id: int
    start: datetime
    end: datetime
    trigger: str
    n_rows: int
    n_drifted: int
    share_drifted: float | None
    dataset_drifted: bool
    domain_auc: float | None
    prediction_score: float | None
    error_rate: float | None
    latency_p95_ms: float | None
    estimated: dict
    realized: dict
    n_labelled: int
    quality: dict


class AlertOut(Schema):
    id: int
    rule: str
    metric: str
    status: str
    severity: str
    value: float | None
    message: str
    opened_at: datetime
    acknowledged_by: str | None
    resolved_at: datetime | None
    snoozed_until: datetime | None


class SnoozeIn(Schema):
    minutes: int


class AlertRuleIn(Schema):
    name: str
    metric: str
    comparator: str
    threshold: float
    consecutive: int = 1
    severity: str = "warning"
    channels: list[str] = []
    emails: list[str] = []
    webhook_url: str = ""
    webhook_secret: str = ""
    cooldown_minutes: int = 60


class AlertRuleOut(Schema):
    id: int
    name: str
    metric: str
    comparator: str
    threshold: float
    consecutive: int
    severity: str
    channels: list[str]
    cooldown_minutes: int


class SettingsIn(Schema):
    window_kind: str | None = None
    window_minutes: int | None = None
    window_count: int | None = None
    schedule_enabled: bool | None = None
    thresholds: dict[str, float] | None = None
    decision_threshold: float | None = None


class OverrideOut(Schema):
    feature: str
    values: dict
    reason: str
    created_by: str | None = None


class SettingsOut(Schema):
    window_kind: str
    window_minutes: int
    window_count: int
    schedule_enabled: bool
    thresholds: dict
    effective_thresholds: dict
    decision_threshold: float
    calibration_source: str
    overrides: list[OverrideOut]


class OverrideIn(Schema):
    feature: str
    values: dict[str, float]
    reason: str

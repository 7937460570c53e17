from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from ninja import Field, Schema
from pydantic import ConfigDict, StrictFloat, WithJsonSchema

from apps.common.edge import NON_BLANK_TEXT_PATTERN, STORABLE_TEXT_PATTERN
from apps.common.schemas import INT32_MAX, InSchema

from .drift import Thresholds
from .models import AlertRule
from .services.common import (
    CHECK_MAX_MINUTES,
    METRIC_PATTERN,
    MIN_WINDOW_MINUTES,
    OVERRIDE_KEYS,
    SNOOZE_MAX_MINUTES,
)
from .services.outcomes import MAX_OUTCOMES

# What services.outcomes checks per item (the service reports every bad item by index, so the body is parsed
# there; the schema documents the same rules).
_OUTCOME_ITEMS = {"type": "object", "required": ["request_id", "label"], "additionalProperties": False, "properties": {
    "request_id": {"type": "string", "format": "uuid"},
    "label": {"type": ["string", "number", "boolean"], "pattern": STORABLE_TEXT_PATTERN},
    "observed_at": {"type": ["string", "number", "boolean", "null"], "pattern": STORABLE_TEXT_PATTERN,
                    "description": "ISO 8601; an unparseable one lists the outcome under `invalid`"}}}


class OutcomesIn(InSchema):
    outcomes: Annotated[list[Any], WithJsonSchema({"type": "array", "items": _OUTCOME_ITEMS,
                                                   "maxItems": MAX_OUTCOMES})] = Field(..., description="Up to 100,000 objects {request_id: UUID, label: str|number|bool, "
                                                 "observed_at?: ISO 8601 (when the outcome was observed)}")


class ConflictOut(Schema):
    request_id: str
    stored: Any
    received: Any


class LabelLatencyOut(Schema):
    median: float | None
    max: float | None


class InvalidOutcomeOut(Schema):
    index: int
    request_id: str
    field: str
    message: str


class OutcomesOut(Schema):
    status: str = Field("done", description="done; pending (some ids are not in the prediction log yet: held "
                        "and matched when the log catches up, answer 202); queued (a large post: ingested by a "
                        "background job, see job_id, answer 202)")
    received: int
    created: int = 0
    unchanged: int = 0
    conflicts: list[ConflictOut] = []
    pending: int = 0
    pending_request_ids: list[str] = Field([], description="the first 1,000 ids held as pending")
    unknown_request_ids: list[str] = Field([], description="ids posted before (held pending) that the "
                                           "prediction log has caught up past without them — no prediction "
                                           "had them — or pending longer than MONITORING_PENDING_OUTCOME_SECONDS")
    invalid: list[InvalidOutcomeOut] = Field([], description="Outcomes refused by the model's rules (a label "
                                             "that is not one of the classes, a non-finite regression label, an "
                                             "unparseable observed_at); never stored")
    label_latency_s: LabelLatencyOut | None = None
    job_id: str | None = None


class DriftCheckIn(InSchema):
    minutes: int = Field(60, ge=MIN_WINDOW_MINUTES, le=CHECK_MAX_MINUTES)


class WindowOut(Schema):
    id: int
    start: datetime
    end: datetime
    first_request_id: UUID | None = Field(None, description="count windows: the rows from (start, first_request_id) "
                                         "to (end, last_request_id) in (request time, request id) order")
    last_request_id: UUID | None = None
    partial: bool = Field(False, description="the trailing window, still filling (recomputed each tick)")
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
    multivariate: dict = Field({}, description="PCA reconstruction-error drift of the numeric features")
    skew: dict = Field({}, description="training-serving skew: feature -> mismatch rate of the window's own rows")


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


class SnoozeIn(InSchema):
    minutes: int = Field(..., ge=1, le=SNOOZE_MAX_MINUTES)


def _max(field: str) -> int:
    return AlertRule._meta.get_field(field).max_length


class AlertRuleIn(InSchema):
    # services.alert_rule_create: a webhook channel needs its URL and signing secret
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "if": {"required": ["channels"], "properties": {"channels": {"contains": {"const": "webhook"}}}},
        "then": {"required": ["webhook_url", "webhook_secret"],
                 "properties": {"webhook_url": {"minLength": 1}, "webhook_secret": {"minLength": 1}}}})

    name: str = Field(..., max_length=_max("name"))
    metric: str = Field(..., description="a monitoring metric, e.g. realized_accuracy, or drift:<feature>",
                        json_schema_extra={"pattern": METRIC_PATTERN})
    comparator: Literal["gt", "gte", "lt", "lte"]
    threshold: float
    consecutive: int = Field(1, ge=1, le=1000)
    severity: Literal["info", "warning", "critical"] = "warning"
    channels: list[Literal["email", "webhook"]] = []
    emails: list[str] = []
    webhook_url: str = Field("", max_length=_max("webhook_url"))
    webhook_secret: str = Field("", max_length=_max("webhook_secret"))
    cooldown_minutes: int = Field(60, ge=0, le=525_600)


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


class SettingsIn(InSchema):
    window_kind: Literal["time", "count"] | None = None
    window_minutes: int | None = Field(None, ge=MIN_WINDOW_MINUTES, le=INT32_MAX)
    window_count: int | None = Field(None, ge=100, le=INT32_MAX)
    schedule_enabled: bool | None = None
    thresholds: dict[Literal[tuple(Thresholds.__dataclass_fields__)], StrictFloat] | None = None


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
    calibration_source: str
    overrides: list[OverrideOut]


class OverrideIn(InSchema):
    feature: str
    values: dict[Literal[OVERRIDE_KEYS], StrictFloat] = Field(..., min_length=1)
    reason: str = Field(..., json_schema_extra={"pattern": NON_BLANK_TEXT_PATTERN})

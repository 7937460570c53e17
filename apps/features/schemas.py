from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import WithJsonSchema

from apps.common.schemas import InSchema

from .services.common import COLUMN_PATTERN, NAME_PATTERN  # noqa: F401 (NAME_PATTERN: used by api.py too)
from .services.sets import REF_RE

NAME = {"pattern": NAME_PATTERN}  # documented; the services check (and word the error)


class EntityIn(InSchema):
    name: str = Field(..., max_length=80, json_schema_extra=NAME)
    join_key: str = Field(..., max_length=120, json_schema_extra={"pattern": COLUMN_PATTERN})
    value_type: Literal["string", "int"] = "string"
    description: str = Field("", max_length=2000)


class EntityOut(Schema):
    name: str
    join_key: str
    value_type: str
    description: str
    created_at: datetime


class SourceVersionOut(Schema):
    source: str
    version: int
    sha256: str
    size: int
    original_filename: str
    original_format: str
    row_count: int
    columns: list[dict]
    stats: dict
    created_at: datetime


class SourceOut(Schema):
    name: str
    description: str
    latest_version: int | None
    row_count: int | None
    columns: list[dict]
    created_at: datetime


class FeatureIn(InSchema):
    name: str = Field(..., max_length=120)
    description: str = Field("", max_length=2000)


class FeatureViewIn(InSchema):
    name: str = Field(..., max_length=80, json_schema_extra=NAME)
    entity: str
    source: str
    timestamp_column: str
    features: list[FeatureIn | str] = Field(..., min_length=1)
    entity_column: str = ""
    written_at_column: str = ""
    availability_lag: str = Field("0", description="e.g. 0, 30m, 1h, 2d")
    ttl: str | None = Field(None, description="e.g. 7d; empty: no limit")
    online: bool = False
    freshness_sla: str | None = None
    materialize_every: str | None = None
    owner: str | None = Field(None, description="username; default: you")
    tags: list[str] = []
    description: str = Field("", max_length=5000)


class FeatureViewPatch(InSchema):
    timestamp_column: str | None = None
    features: list[FeatureIn | str] | None = Field(None, min_length=1)
    entity_column: str | None = None
    written_at_column: str | None = None
    availability_lag: str | None = None
    ttl: str | None = None
    online: bool | None = None
    freshness_sla: str | None = None
    materialize_every: str | None = None
    owner: str | None = None
    tags: list[str] | None = None
    description: str | None = None


class FeatureOut(Schema):
    name: str
    value_type: str
    description: str


class FreshnessOut(Schema):
    newest: datetime | None
    age_seconds: float | None
    sla_seconds: float | None
    breached: bool


class FeatureViewOut(Schema):
    name: str
    version: int
    is_current: bool
    entity: str
    source: str
    entity_column: str
    timestamp_column: str
    written_at_column: str
    availability_lag_seconds: float
    ttl_seconds: float | None
    online: bool
    freshness_sla_seconds: float | None
    materialize_every_seconds: float | None
    owner: str | None
    tags: list[str]
    description: str
    features: list[FeatureOut]
    last_materialized_at: datetime | None
    online_row_count: int
    freshness: FreshnessOut
    created_at: datetime


class FeatureSetIn(InSchema):
    name: str = Field(..., max_length=80, json_schema_extra=NAME)
    features: list[Annotated[str, WithJsonSchema({"type": "string", "pattern": REF_RE.pattern})]] = Field(
        ..., min_length=1, description="view:feature, view@2:feature or 'view:feature as name'")
    description: str = Field("", max_length=5000)


class FeatureSetPatch(InSchema):
    features: list[Annotated[str, WithJsonSchema({"type": "string", "pattern": REF_RE.pattern})]] | None = Field(
        None, min_length=1)
    description: str | None = Field(None, max_length=5000)


class FeatureSetItemOut(Schema):
    name: str
    reference: str
    view: str
    view_version: int
    value_type: str
    online: bool


class FeatureSetOut(Schema):
    name: str
    description: str
    features: list[FeatureSetItemOut]
    batch_only_features: list[str]
    online_servable: bool
    created_at: datetime


class OnlineIn(InSchema):
    entity_keys: list[Annotated[Any, WithJsonSchema({"type": ["string", "integer", "object"]})]] = Field(
                                   ..., min_length=1, max_length=1000,
                                   description="scalars, or objects {join_key: value} for several entities")
    as_of: datetime | None = Field(
        None, description="Omit for the online store (values of the last materialization, TTL judged now). "
        "Given, the values as of that time are answered from the offline store by the training-set join "
        "itself (a value is usable from event time + lag and at most TTL old, inclusive).")


class OnlineRow(Schema):
    entity: dict
    values: dict
    event_times: dict
    status: dict[str, Literal["ok", "stale", "expired", "missing"]] = Field(
        ..., description="Per feature. ok: the value the offline join gives at the view's last materialization "
        "(TTL judged now, inclusive). stale: the view version's online values lag what the offline join reads "
        "(a newer source version or an edited definition not materialized yet, or never materialized) — the "
        "value is the last materialization's, or null; re-materializing turns it into ok/expired/missing. "
        "expired: older than the TTL (value null). missing: no value for this entity (value null). With as_of: "
        "the join's own statuses (ok/expired/missing).")


class OnlineOut(Schema):
    feature_set: str
    features: list[str]
    results: list[OnlineRow]


class TrainingSetOut(Schema):
    name: str
    description: str
    feature_set: str
    status: str
    error: str
    job_id: str | None
    label_filename: str
    label_sha256: str
    label_row_count: int
    timestamp_column: str
    label_columns: list[str]
    sha256: str
    size: int
    row_count: int
    rows_without_features: int
    null_rates: dict
    label_balance: dict
    leakage: dict
    source_versions: list[str]
    created_at: datetime
    built_at: datetime | None
    download_url: str | None

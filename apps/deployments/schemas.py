from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from django.conf import settings
from ninja import Field, Schema
from pydantic import ConfigDict

from apps.common.edge import NON_BLANK_TEXT_PATTERN
from apps.common.schemas import InSchema


class DeploymentIn(InSchema):
    # services.deployment_create: going live (the default) needs an owner
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "if": {"properties": {"go_live": {"const": True}}},
        "then": {"required": ["owner"], "properties": {"owner": {"type": "string", "minLength": 1}}}})

    version_id: int
    slug: str
    name: str = ""
    owner: str | None = Field(None, description="Username of the owner (a project member); required to go live")
    input_mode: Literal["inline", "entity"] = "inline"
    max_batch: int | None = Field(None, ge=1, le=settings.SERVING_MAX_BATCH)  # as services.deployment_create
    go_live: bool = True
    override_reason: str = Field("", description="Project owners, where the project's promotion policy allows it: "
                                                 "put a first version live without a promotion request (audited)")


class DeploymentOut(Schema):
    slug: str
    name: str
    project: str
    status: str
    status_message: str
    input_mode: str
    max_batch: int
    model: str
    production_version_id: int
    production_version: int
    owner: str | None
    predict_url: str
    created_at: datetime


class PauseIn(InSchema):
    reason: str = ""


class VersionIn(InSchema):
    version_id: int
    reason: str = ""


class KeyIn(InSchema):
    name: str = Field(..., json_schema_extra={"pattern": NON_BLANK_TEXT_PATTERN})


class KeyOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The secret: shown once, never stored")


class EventOut(Schema):
    kind: str
    version_id: int | None
    previous_version_id: int | None
    reason: str
    actor: str | None
    created_at: datetime


class PredictionLogOut(Schema):
    request_id: UUID
    batch_id: UUID
    version_id: int
    created_at: datetime
    entity_key: str | None
    inputs: dict[str, Any]
    output: Any
    probabilities: dict[str, float] | None
    latency_ms: float


class PredictIn(InSchema):
    instances: list[dict[str, Any]] | None = Field(None, description="Feature values per row (inline deployments)")
    entities: list[str | int] | None = Field(None, description="Entity keys (entity-key deployments)")


class PredictionOut(Schema):
    request_id: UUID = Field(description="Id of this row; outcomes are joined on it")
    prediction: Any
    probabilities: dict[str, float] | None


class ModelVersionRef(Schema):
    id: int
    model: str
    version: str


class PredictOut(Schema):
    request_id: UUID
    deployment: str
    model_version: ModelVersionRef
    predictions: list[PredictionOut]

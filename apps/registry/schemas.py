from datetime import datetime
from typing import Literal

from ninja import Field, Schema

from apps.common.schemas import InSchema

from . import contract


class ContractItem(InSchema):
    """One input feature (see the README's "Input contracts")."""

    name: str = Field(..., json_schema_extra={"pattern": contract.NAME_PATTERN, "maxLength": contract.NAME_MAX})
    type: str = Field("float", json_schema_extra={"enum": sorted(contract.ALIASES)})  # (case and spaces ignored)
    nullable: bool = False
    categories: list[str | int] | None = None
    unknown: Literal[contract.UNKNOWN_POLICIES] | None = None
    categorical: bool | None = None
    description: str | None = None


class ModelIn(InSchema):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,79}$")
    task: Literal["binary_classification", "multiclass_classification", "regression"]
    # a list of features, or "infer": read it from the first uploaded version (model + holdout/training file)
    input_contract: list[ContractItem] | Literal["infer"] = []
    description: str = ""
    feature_set: str | None = None


class ContractIn(InSchema):
    input_contract: list[ContractItem]


class ModelOut(Schema):
    id: int
    name: str
    task: str
    description: str
    input_contract: list[dict]
    contract_pending: bool = False  # "infer" was asked and no version has been validated yet
    feature_set: str | None = None
    created_by: str | None = None
    created_at: datetime
    archived_at: datetime | None = None
    versions: int = 0


class VersionOut(Schema):
    id: int
    model: str
    version: int
    status: str
    status_reason: str
    artifact_format: str
    artifact_sha256: str
    artifact_size: int
    original_filename: str
    serving_format: str
    onnx_verified: bool
    classes: list | None = None
    framework: str
    library_versions: dict
    params: dict
    metrics: dict
    uploader_metrics: dict
    tags: list
    model_card: str
    validation_report: dict
    code_ref: str
    parent_version: int | None = None
    created_by: str | None = None
    created_at: datetime
    validated_at: datetime | None = None
    job_id: str | None = None
    url: str


class VersionPatch(InSchema):
    tags: list[str] | None = None
    model_card: str | None = None


class ArchiveIn(InSchema):
    archived: bool = True


class MetricsOut(Schema):
    version: int
    status: str
    metrics: dict
    uploader_metrics: dict


class ProfileOut(Schema):
    version: int
    reference_profile: dict

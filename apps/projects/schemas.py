from datetime import datetime
from typing import Literal
from uuid import UUID

from ninja import Field, Schema
from pydantic import ConfigDict

from apps.common.schemas import InSchema

from .models import Role
from .services import NAME_MAX, SLUG_MAX

JobStatusLiteral = Literal["queued", "running", "succeeded", "failed", "cancelled"]


RoleLiteral = Literal[tuple(Role.values)]
DESCRIPTION_MAX = 5000


class ProjectIn(InSchema):
    # services._clean_slug: without a slug, the name must give one (slugify keeps ASCII letters and digits)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["slug"], "properties": {"slug": {"minLength": 1}}},
        {"properties": {"name": {"pattern": "[A-Za-z0-9]"}}}]})

    name: str = Field(..., min_length=1, max_length=NAME_MAX, pattern=r"\S")
    slug: str = Field("", max_length=SLUG_MAX, pattern=r"^([a-z0-9]+([_-][a-z0-9]+)*)?$",
                      description="lowercase letters, digits and hyphens; default: derived from the name")
    description: str = Field("", max_length=DESCRIPTION_MAX)


class ProjectPatch(InSchema):
    name: str | None = Field(None, min_length=1, max_length=NAME_MAX, pattern=r"\S")
    description: str | None = Field(None, max_length=DESCRIPTION_MAX)
    archived: bool | None = None


class ProjectOut(Schema):
    slug: str
    name: str
    description: str
    created_at: datetime
    archived_at: datetime | None
    role: RoleLiteral | None = None


class MemberIn(InSchema):
    username: str = Field(..., min_length=1, max_length=150)
    role: RoleLiteral


class MemberPatch(InSchema):
    role: RoleLiteral


class MemberOut(Schema):
    username: str
    role: RoleLiteral
    created_at: datetime


class AuditEventOut(Schema):
    created_at: datetime
    actor: str | None
    verb: str
    target_type: str
    target_id: str
    target_label: str
    details: dict

    @staticmethod
    def resolve_actor(obj) -> str | None:
        return obj.actor.username if obj.actor_id else None


class JobOut(Schema):
    id: UUID
    kind: str
    title: str
    status: JobStatusLiteral
    progress: int
    message: str
    result: dict
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested: bool


class TokenIn(InSchema):
    name: str = Field(..., min_length=1, max_length=80, pattern=r"\S")


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreatedOut(TokenOut):
    token: str


class JobAcceptedOut(Schema):
    """The answer of an operation that starts a background job (202): poll ``status_url``."""

    job_id: UUID
    status: JobStatusLiteral
    status_url: str


def job_accepted(job) -> dict:
    return {"job_id": job.pk, "status": job.status, "status_url": f"/api/v1/jobs/{job.pk}"}

from datetime import datetime

from ninja import Field, Schema


class ProjectIn(Schema):
    name: str = Field(..., max_length=200)
    slug: str = Field("", max_length=200)
    description: str = Field("", max_length=10000)


class ProjectPatch(Schema):
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=10000)
    archived: bool | None = None


class ProjectOut(Schema):
    slug: str
    name: str
    description: str
    created_at: datetime
    archived_at: datetime | None
    role: str | None = None


class MemberIn(Schema):
    username: str = Field(..., min_length=1, max_length=150)
    role: str


class MemberPatch(Schema):
    role: str


class MemberOut(Schema):
    username: str
    role: str
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
    id: str
    kind: str
    title: str
    status: str
    progress: int
    message: str
    result: dict
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TokenIn(Schema):
    name: str = Field(..., max_length=200)


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreatedOut(TokenOut):
    token: str

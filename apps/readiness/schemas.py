from datetime import datetime

from ninja import Schema

from apps.common.schemas import InSchema


class ItemOut(Schema):
    key: str
    section: str
    title: str
    status: str
    figure: str
    detail: str
    value: float | None = None
    evidence_url: str
    source: str
    answerable: bool
    answer: str
    note: str
    answered_by: str
    answered_at: str


class MLTestScoreOut(Schema):
    groups: dict[str, float]
    final: float
    max: int


class AssessmentOut(Schema):
    project: str
    computed_at: datetime
    stage: str
    score: int
    lead_time_s: float | None = None
    open_alerts: int
    owners: list[str]
    ml_test_score: MLTestScoreOut
    items: list[ItemOut]
    ml_test_score_items: list[ItemOut]


class AnswerIn(InSchema):
    answer: str = ""
    note: str = ""


class AnswerOut(Schema):
    item_key: str
    answer: str
    note: str
    answered_by: str | None = None
    answered_at: datetime


class SnapshotIn(InSchema):
    note: str = ""


class SnapshotOut(Schema):
    id: int
    project: str
    kind: str
    taken_at: datetime
    taken_by: str | None = None
    stage: str
    score: int
    ml_test_score: float
    lead_time_s: float | None = None
    open_alerts: int
    note: str
    items: dict


class PortfolioRowOut(Schema):
    project: str
    name: str
    stage: str
    score: int
    ml_test_score: float
    lead_time_s: float | None = None
    owner: str
    open_alerts: int
    last_promotion: datetime | None = None
    url: str

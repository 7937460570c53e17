"""What every API operation shares: strict request bodies, one pagination, the error shape.

- ``InSchema``: the base of every request body. Unknown fields are refused (422 naming them) and the body
  must be a JSON object (``portal.api.SlipwayParser``).
- ``Page`` + ``paginate``: every list takes ``limit`` (1-500, default 50) and ``offset`` (0-OFFSET_MAX);
  outside the range is a 422. The total number of items is in the ``X-Total-Count`` response header.
- ``ErrorOut``: ``{"detail": str, "errors": [{"field": str | None, "message": str}]}``, documented on every
  operation (``portal.api``).
"""

from __future__ import annotations

import datetime
import typing

from ninja import Field, Schema
from pydantic import ConfigDict, field_validator

LIMIT_DEFAULT = 50
LIMIT_MAX = 500
OFFSET_MAX = 1_000_000
TOTAL_HEADER = "X-Total-Count"


INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1  # a PositiveIntegerField's column


class InSchema(Schema):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_number_coercion(cls, value, info):
        """JSON true/false and numbers are not interchangeable (pydantic's lax mode would turn 0 into false
        and false into 0.0): a boolean field takes a boolean, a number field not a boolean; and a date-time
        field takes ISO 8601 text, not a number (which lax mode reads as a Unix time)."""
        ann = cls.model_fields[info.field_name].annotation
        kinds = {a for a in (typing.get_args(ann) or (ann,)) if a is not type(None)}
        if kinds == {bool} and value is not None and not isinstance(value, bool):
            raise ValueError("must be true or false")
        if isinstance(value, bool) and kinds and kinds <= {int, float}:
            raise ValueError("must be a number, not true or false")
        if isinstance(value, int | float) and kinds and kinds <= {datetime.datetime, datetime.date}:
            raise ValueError("must be an ISO 8601 date-time text, not a number")
        return value

    @field_validator("*")
    @classmethod
    def _storable_integer(cls, value):
        """No integer beyond 64 bits reaches a service (a narrower column's overflow is a 422 too:
        apps.common.api_edge maps the database's DataError)."""
        if isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX <= value <= INT64_MAX:
            raise ValueError("must be an integer between -(2**63 - 1) and 2**63 - 1")
        return value


class Page(Schema):
    limit: int = Field(LIMIT_DEFAULT, ge=1, le=LIMIT_MAX,
                       description=f"Items per page (1-{LIMIT_MAX}); the total is in the {TOTAL_HEADER} header")
    offset: int = Field(0, ge=0, le=OFFSET_MAX, description="Items to skip")


def response_header(request, name: str, value: str) -> None:
    """Ask the API to set a header on this request's answer (``portal.api.SlipwayAPI.create_response``)."""
    headers = getattr(request, "slipway_headers", None)
    if headers is None:
        headers = request.slipway_headers = {}
    headers[name] = value


def paginate(request, items, page: Page):
    """The page of ``items`` (a queryset or a list); the total goes into ``X-Total-Count``."""
    total = len(items) if isinstance(items, list | tuple) else items.count()
    response_header(request, TOTAL_HEADER, str(total))
    return items[page.offset: page.offset + page.limit]


def located(request, url: str) -> None:
    """``Location`` of what a 201/202 answer created (or the job that tracks it)."""
    response_header(request, "Location", url)


def job_location(request, job_id) -> None:
    located(request, f"/api/v1/jobs/{job_id}")


IDEMPOTENT = {"parameters": [{
    "in": "header", "name": "Idempotency-Key", "required": False,
    "schema": {"type": "string", "maxLength": 100},
    "description": "Makes a retry safe: the same key with the same body answers with the first result; the same "
                   "key with a different body is a 409.",
}]}


class ErrorItemOut(Schema):
    field: str | None = Field(None, description="the input field at fault, e.g. `instances[2].amount`")
    message: str


class ErrorOut(Schema):
    detail: str
    errors: list[ErrorItemOut] = []
    request_id: str | None = Field(None, description="on 500 (and on every prediction answer): quote it when reporting")

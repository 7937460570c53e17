"""Checking posted outcomes against the model that made the prediction (pure: no Django).

The same rules as serving's input contract, applied to labels: nothing is coerced. A classifier's label
must be one of the classes of the model version that answered the request, with the classes' own JSON
type (``1`` for integer classes — not ``"1"``, ``1.0`` or ``true``; ``"yes"`` for text classes; ``true`` for
boolean classes); a regressor's label must be a finite number. ``observed_at`` (optional) must be an
ISO 8601 date-time (a time without zone is UTC) and not in the future.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

FUTURE_TOLERANCE = timedelta(minutes=5)


def _describe(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("…" if len(value) > 40 else "")
    return f"{type(value).__name__} {value!r}"


def _same_type(label, cls) -> bool:
    if isinstance(cls, bool) or isinstance(label, bool):
        return isinstance(cls, bool) and isinstance(label, bool)
    if isinstance(cls, int):
        return type(label) is int
    if isinstance(cls, float):
        return type(label) in (int, float)
    return type(label) is type(cls)


def label_problem(label, *, task: str, classes: list | None) -> str | None:
    """Why ``label`` cannot be an outcome of this model (None when it can)."""
    if task == "regression":
        if isinstance(label, bool) or not isinstance(label, (int, float)):
            return f"must be a number for a regression model, got {_describe(label)}"
        if not math.isfinite(float(label)):
            return "must be a finite number"
        return None
    if not classes:
        return None  # the version's classes are unknown: nothing to check against
    shown = ", ".join(repr(c) for c in classes[:20]) + (" …" if len(classes) > 20 else "")
    if not any(_same_type(label, c) and label == c for c in classes):
        return f"{_describe(label)} is not one of the model's classes ({shown})"
    return None


def parse_observed_at(value, *, now: datetime) -> tuple[datetime | None, str | None]:
    """(time, None) or (None, problem). ``None``/absent is fine: (None, None)."""
    if value is None:
        return None, None
    if not isinstance(value, str) or len(value) > 64:
        return None, f"must be an ISO 8601 date-time string, got {_describe(value)}"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None, f"{_describe(value)} is not an ISO 8601 date-time (e.g. 2026-11-25T14:30:00Z)"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when > now + FUTURE_TOLERANCE:
        return None, f"{value} is in the future"
    return when, None

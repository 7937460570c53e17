"""One-round-trip reads for hot paths (API token authentication, the online feature lookup).

Building an ORM query costs ~0.5–1 ms of Python on this class of machine, several times the database
round trip itself. These helpers run a hand-written ``SELECT`` through Django's connection (so the
SQL works on PostgreSQL and SQLite alike, and the connection, its transaction and its error handling
stay Django's) and turn the row into a **partial model instance** with ``Model.from_db``: the columns
read are set, every other field is deferred — reading one loads it on access, and ``save()`` on such an
instance writes only the loaded fields, so nothing is ever overwritten with a default.

Only plain columns (integers, strings, booleans, datetimes) are read here; JSON and other typed
columns stay deferred so that their ORM converters apply when they are loaded.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection
from django.utils.dateparse import parse_datetime


def fetch_one(sql: str, params) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def columns(model, attnames: set[str] | frozenset[str], alias: str) -> tuple[list, str]:
    """The model's concrete fields named in ``attnames`` (in model order, as ``from_db`` wants them) and
    the matching ``alias.column, …`` select list."""
    fields = [f for f in model._meta.concrete_fields if f.attname in attnames]
    missing = set(attnames) - {f.attname for f in fields}
    if missing:
        raise ValueError(f"{model.__name__} has no column(s) {sorted(missing)}")
    qn = connection.ops.quote_name
    return fields, ", ".join(f"{alias}.{qn(f.column)}" for f in fields)


def aware(value) -> datetime | None:
    """A datetime column read raw: aware UTC on both backends (SQLite gives naive values or text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def partial(model, fields: list, values) -> object:
    """A model instance with ``fields`` set from ``values`` (same order) and every other field deferred."""
    converted = []
    for f, v in zip(fields, values, strict=True):
        if v is not None and f.get_internal_type() == "DateTimeField":
            v = aware(v)
        elif v is not None and f.get_internal_type() == "BooleanField":
            v = bool(v)
        converted.append(v)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)

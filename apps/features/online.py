"""Online store backends: the PostgreSQL table ``OnlineFeatureValue`` (default) or Redis.

Redis is used when ``SLIPWAY_FEATURES_REDIS_URL`` is set (settings.FEATURES_ONLINE_REDIS_URL). Both store,
per (view, entity key), the feature values of the latest available row and its event time. Reads are
one round trip for any number of views × entities.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from .models import DataSource, DataSourceVersion, FeatureView, OnlineFeatureValue

# One row back: a JSON array of [view_id, entity_key, values, event time as integer microseconds since
# the epoch] — one JSON parse (orjson) instead of per-row type loaders; the time is exact. Each row's item
# was rendered at materialization (``payload``), so the server only concatenates text; rows written
# before that column existed are rendered by the query.
# The keys travel as ONE text parameter split by the server (unit separator, U+001F): dumping a Python
# list as a PostgreSQL array costs more than the query's planning. Keys holding U+001F use the array form.
# The same round trip also answers which of the views are stale (``STALE_RULE``, stored in
# ``FeatureView.online_stale``): the second column.
_STALE = ("(SELECT coalesce(string_agg(v.id::text, ','), '') FROM features_featureview v "
          "WHERE v.id = ANY(string_to_array(%s, ',')::int[]) AND v.online_stale)")
_SELECT = ("SELECT '[' || coalesce(string_agg(CASE WHEN payload <> '' THEN payload ELSE json_build_array("
           "view_id, entity_key, \"values\", (extract(epoch FROM event_time) * 1000000)::bigint)::text END, ','), '') "
           "|| ']', " + _STALE + " FROM features_onlinefeaturevalue "
           "WHERE view_id = ANY(string_to_array(%s, ',')::int[]) AND entity_key = ")
_SQL = _SELECT + "ANY(string_to_array(%s, chr(31)))"
_SQL_ARRAY = _SELECT + "ANY(%s)"
_SEP = "\x1f"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


STALE_RULE = """A view version's online values are *stale* while they lag what the offline join reads: it was
never materialized, its source has a newer version than the one materialized, or its definition was edited
(in place) after the materialization."""


def stale_view_ids(view_ids: list[int]) -> set[int]:
    """The views of ``view_ids`` whose online values are stale (``STALE_RULE``, as stored by
    ``online_stale_refresh``): the Redis and SQLite paths and the pages (PostgreSQL answers it in the
    lookup's own query)."""
    return set(FeatureView.objects.filter(pk__in=view_ids, online_stale=True).values_list("pk", flat=True))


def online_stale_refresh(*, view_ids: list[int] | None = None, source_ids: list[int] | None = None) -> None:
    """Store ``STALE_RULE``'s answer in ``FeatureView.online_stale`` for the views ``view_ids`` and the views
    of the sources ``source_ids``. Called wherever an input of the rule changes: the end of a
    materialization, an in-place edit, a new source version (and the admin's edits) — one UPDATE there
    instead of a subquery per view in every lookup (``bench/online_lookup.py``)."""
    from django.db.models import Case, F, OuterRef, Q, Subquery, Value, When

    cond = Q(pk__in=view_ids or []) | Q(source_id__in=source_ids or [])
    with transaction.atomic():
        # The sources' rows first: an upload holds its source's row until its new version is committed, so
        # the rule below (a new statement) sees that version.
        list(DataSource.objects.select_for_update().filter(
            pk__in=FeatureView.objects.filter(cond).values("source_id")).values_list("pk", flat=True))
        latest = DataSourceVersion.objects.filter(source=OuterRef("source")).order_by("-version").values("pk")[:1]
        fresh = Q(last_materialized_at__isnull=False) & Q(updated_at__lte=F("last_materialized_at")) \
            & Q(materialized_source_version=Subquery(latest))
        FeatureView.objects.filter(cond).update(
            online_stale=Case(When(fresh, then=Value(False)), default=Value(True)))


def _payload(view_id: int, key: str, values: dict, event_time: datetime) -> str:
    return orjson.dumps([view_id, key, values, (event_time - _EPOCH) // timedelta(microseconds=1)]).decode()


class PostgresOnlineStore:
    """The default store: a table in the portal's database (PostgreSQL; SQLite in the embedded mode)."""

    name = "database"

    def write(self, *, view, rows: list[dict], materialized_at: datetime) -> int:
        """Upsert ``rows`` ({entity_key, values, event_time, available_at}) and drop keys not written now."""
        objs = [OnlineFeatureValue(view=view, entity_key=r["entity_key"], values=r["values"], event_time=r["event_time"],
                                   available_at=r["available_at"], materialized_at=materialized_at,
                                   payload=_payload(view.pk, r["entity_key"], r["values"], r["event_time"]))
                for r in rows]
        with transaction.atomic():
            OnlineFeatureValue.objects.bulk_create(
                objs, batch_size=2000, update_conflicts=True, unique_fields=["view", "entity_key"],
                update_fields=["values", "event_time", "available_at", "materialized_at", "payload"])
            OnlineFeatureValue.objects.filter(view=view, materialized_at__lt=materialized_at).delete()
        return len(objs)

    def read(self, view_ids: list[int], keys: list[str]) -> dict[tuple[int, str], tuple[dict, datetime]]:
        return self.read_served(view_ids, keys)[0]

    def read_served(self, view_ids: list[int], keys: list[str]) -> tuple[dict[tuple[int, str], tuple[dict, datetime]],
                                                                          set[int]]:
        """(the stored values and event times by (view, key), the stale views among ``view_ids``)."""
        if connection.vendor == "postgresql":
            import psycopg

            connection.ensure_connection()
            # A plain psycopg cursor (server-side binding, prepared after a few calls), not the ORM's.
            with psycopg.Cursor(connection.connection) as cur:
                ids = ",".join(map(str, map(int, view_ids)))
                joined = _SEP.join(keys)
                if joined.count(_SEP) == len(keys) - 1:
                    cur.execute(_SQL, (ids, ids, joined))
                else:
                    cur.execute(_SQL_ARRAY, (ids, ids, keys))
                payload, stale_text = cur.fetchall()[0]
                rows = orjson.loads(payload)
            out, times = {}, {}
            for v, k, vals, us in rows:
                t = times.get(us)  # values materialized together share their event times
                if t is None:
                    t = times[us] = _EPOCH + timedelta(microseconds=us)
                out[(v, k)] = (vals, t)
            return out, {int(i) for i in stale_text.split(",")} if stale_text else set()
        rows = OnlineFeatureValue.objects.filter(view_id__in=view_ids, entity_key__in=keys).values_list(
            "view_id", "entity_key", "values", "event_time")
        return {(v, k): (vals, ev) for v, k, vals, ev in rows}, stale_view_ids(view_ids)

    def clear(self, *, view) -> None:
        OnlineFeatureValue.objects.filter(view=view).delete()


class RedisOnlineStore:
    """Optional: one Redis string per (view, entity key): ``{"v": {...}, "e": "<event time ISO>"}``."""

    name = "redis"

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = "slipway:features:"

    def _key(self, view_id: int, key: str) -> str:
        return f"{self.prefix}{view_id}:{key}"

    def write(self, *, view, rows: list[dict], materialized_at: datetime) -> int:
        pipe = self.client.pipeline(transaction=False)
        index = f"{self.prefix}{view.pk}:__keys__"
        old = {k.decode() for k in self.client.smembers(index)}
        new = set()
        for r in rows:
            pipe.set(self._key(view.pk, r["entity_key"]),
                     json.dumps({"v": r["values"], "e": r["event_time"].isoformat()}))
            new.add(r["entity_key"])
        for gone in old - new:
            pipe.delete(self._key(view.pk, gone))
        pipe.delete(index)
        if new:
            pipe.sadd(index, *new)
        pipe.execute()
        # Keep the database table in step as well: pages and freshness read it.
        PostgresOnlineStore().write(view=view, rows=rows, materialized_at=materialized_at)
        return len(rows)

    def read_served(self, view_ids: list[int], keys: list[str]):
        """(the stored values by (view, key), the stale views among ``view_ids`` — from the database)."""
        return self.read(view_ids, keys), stale_view_ids(view_ids)

    def read(self, view_ids: list[int], keys: list[str]) -> dict[tuple[int, str], tuple[dict, datetime]]:
        pairs = [(v, k) for v in view_ids for k in keys]
        raw = self.client.mget([self._key(v, k) for v, k in pairs])
        out = {}
        for pair, item in zip(pairs, raw, strict=True):
            if item is not None:
                doc = json.loads(item)
                out[pair] = (doc["v"], parse_datetime(doc["e"]).astimezone(UTC))
        return out

    def clear(self, *, view) -> None:
        self.write(view=view, rows=[], materialized_at=datetime.now(UTC))


_store = None


def online_store():
    """The configured store (cached per process)."""
    global _store
    url = getattr(settings, "FEATURES_ONLINE_REDIS_URL", "")
    if _store is None or (_store.name == "redis") != bool(url):
        _store = RedisOnlineStore(url) if url else PostgresOnlineStore()
    return _store

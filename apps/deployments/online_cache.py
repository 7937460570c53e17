"""Online feature values for entity-key deployments when the online store cannot be read.

Each serving process keeps a read-through copy of the online values it has read or preloaded, so that an
entity-key deployment keeps answering while PostgreSQL is down:

- **Preloaded views**: every view of a live entity-key deployment with at most
  ``SERVING_ONLINE_PRELOAD_ROWS`` entities is held whole (read at worker start from the database, else
  from the host's ``SERVING_ONLINE_SNAPSHOT`` file the drainer keeps). For such a view a key absent from
  the copy is absent from the store too: the answer is the store's ("no value", 422).
- **Read-through**: for larger views, every value a request read from the store is kept (least recently
  used first out), so an entity seen recently is answered.

While the database is reachable every request still reads the store (the copy is only refreshed by it).
The copy is used only when the read fails (or the process already knows the database is down). It is
bounded by ``SERVING_ONLINE_CACHE_BYTES`` (estimated size of the values) and can never be staler than
the store: values change only at a materialization, every state check (``SERVING_STATE_TTL``) compares
each view's last materialization time and drops the copy of a view that changed (a preloaded view is
read again), and the TTL of each value is judged at the time of the request by the lookup's own rule, so
an expired value is answered as expired, exactly as the store would; a view the store last reported
stale (``STALE_RULE``) is answered as stale. A request that needs a value the
copy does not hold is refused with 503 and ``Retry-After`` (counted for its deployment, reason
``online_unavailable``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

import orjson
from django.conf import settings

logger = logging.getLogger("slipway.serving")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ENTRY_OVERHEAD = 200  # bytes per entry beyond its JSON size: the tuple, the key tuple, the dict


class NotCached(Exception):
    """The copy does not hold a value this request needs (the store is unreachable)."""

    def __init__(self, view_id: int, key: str):
        super().__init__(f"{view_id}:{key}")
        self.view_id = view_id
        self.key = key


class OnlineCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._rows: OrderedDict[tuple[int, str], tuple[dict, datetime, int]] = OrderedDict()
        self.bytes = 0
        self._stamps: dict[int, str] = {}  # view id → its last materialization time as known here
        self._complete: set[int] = set()  # views held whole: an absent key is absent from the store
        self._stale: set[int] = set()  # views whose online values lag the offline join (``STALE_RULE``), as last read
        self.preloaded: dict[int, str] = {}  # view id → the materialization time it was preloaded at
        self._epoch = 0  # bumped when a view's copy is dropped: a read that started before is not kept

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self.bytes = 0
            self._stamps.clear()
            self._complete.clear()
            self._stale.clear()
            self.preloaded.clear()
            self._epoch += 1

    def stats(self) -> dict:
        return {"entries": len(self._rows), "bytes": self.bytes, "complete_views": sorted(self._complete)}

    # -- keeping the copy right ------------------------------------------------------------------------
    def note_stale(self, view_ids, stale) -> None:
        """Record which of ``view_ids`` the store reported stale (answered as ``stale`` from the copy too)."""
        for vid in view_ids:
            if vid in stale:
                self._stale.add(vid)
            else:
                self._stale.discard(vid)

    def note_stamps(self, stamps: dict[int, str]) -> list[int]:
        """Record each view's last materialization time; drop the copy of every view whose time changed.
        Returns those views (the caller preloads the small ones again)."""
        changed = []
        with self._lock:
            for vid, stamp in stamps.items():
                old = self._stamps.get(vid)
                self._stamps[vid] = stamp
                if old is not None and old != stamp:
                    changed.append(vid)
            if changed:
                self._epoch += 1
                gone = set(changed)
                for pair in [p for p in self._rows if p[0] in gone]:
                    self.bytes -= self._rows.pop(pair)[2]
                self._complete -= gone
        if changed:
            logger.info("Online values re-materialized: dropped this process's copy", extra={"views": changed})
        return changed

    def preload(self, view_id: int, stamp: str, rows: list, *, stale: bool = False) -> bool:
        """Hold one view whole (``rows``: [key, values, event time µs]). Returns True when all fit."""
        with self._lock:
            self.note_stale([view_id], {view_id} if stale else set())
            for pair in [p for p in self._rows if p[0] == view_id]:
                self.bytes -= self._rows.pop(pair)[2]
            self._stamps[view_id] = stamp
            self.preloaded[view_id] = stamp
            self._epoch += 1
            for key, values, us in rows:
                self._add((view_id, key), values, _EPOCH + timedelta(microseconds=us))
            whole = all((view_id, r[0]) in self._rows for r in rows)
            if whole:
                self._complete.add(view_id)
            else:
                self._complete.discard(view_id)
                logger.warning("Online values of a view do not fit SERVING_ONLINE_CACHE_BYTES; keeping part",
                               extra={"view_id": view_id, "rows": len(rows), "budget": settings.SERVING_ONLINE_CACHE_BYTES})
            return whole

    def _add(self, pair: tuple[int, str], values: dict, event_time: datetime) -> None:
        old = self._rows.get(pair)
        if old is not None:
            if old[1] == event_time:  # same materialization, same row: only its recency changes
                self._rows.move_to_end(pair)
                return
            self.bytes -= self._rows.pop(pair)[2]
        size = len(orjson.dumps(values)) + len(pair[1]) + _ENTRY_OVERHEAD
        self._rows[pair] = (values, event_time, size)
        self.bytes += size
        budget = settings.SERVING_ONLINE_CACHE_BYTES
        while self.bytes > budget and self._rows:
            (vid, _), (_, _, s) = self._rows.popitem(last=False)
            self.bytes -= s
            self._complete.discard(vid)

    # -- reading ---------------------------------------------------------------------------------------
    def read_through(self, read, view_ids: list[int], keys: list[str], *, store_down: bool):
        """``read(view_ids, keys)`` (the store's ``read_served``: values by (view, key) and the stale views)
        when it can be used, keeping what it returned; else (or when it fails with an outage error) the copy.
        Raises ``NotCached`` for a value the copy cannot answer."""
        if not store_down:
            epoch = self._epoch
            try:
                found, stale = read(view_ids, keys)
            except Exception as exc:  # noqa: BLE001 - only an unreachable store falls back, see _is_outage
                if not is_outage(exc):
                    raise
                _close_connection()
                logger.warning("Online store unreachable; answering from this process's copy",
                               extra={"error": type(exc).__name__})
            else:
                with self._lock:
                    if epoch == self._epoch:
                        for pair, (values, event_time) in found.items():
                            self._add(pair, values, event_time)
                    self.note_stale(view_ids, stale)
                return found, stale
        return self.lookup(view_ids, keys), {v for v in view_ids if v in self._stale}

    def lookup(self, view_ids: list[int], keys: list[str]) -> dict:
        found = {}
        with self._lock:
            for vid in view_ids:
                for key in keys:
                    entry = self._rows.get((vid, key))
                    if entry is not None:
                        found[(vid, key)] = (entry[0], entry[1])
                        self._rows.move_to_end((vid, key))
                    elif vid not in self._complete:
                        raise NotCached(vid, key)
        return found


def _close_connection() -> None:
    from django.db import connection

    try:
        connection.close()
    except Exception:  # noqa: BLE001 - the connection is already broken
        pass


def is_outage(exc: BaseException) -> bool:
    """An error that means "the store cannot be reached" (PostgreSQL, or the optional Redis store)."""
    from django.db import DatabaseError, InterfaceError, OperationalError

    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DatabaseError):
        return False  # a bad query is a bug, not an outage
    try:  # the PostgreSQL store reads through a plain psycopg cursor: psycopg's own errors
        import psycopg

        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
    except ImportError:  # pragma: no cover - SQLite set-ups
        pass
    return type(exc).__module__.startswith("redis") or isinstance(exc, (ConnectionError, TimeoutError))


ONLINE = OnlineCache()

"""The prediction-log pipeline: spool (per process, before the response) → bulk insert (drainer).

Serving calls ``record_prediction`` / ``record_error`` (one ``write(2)`` to this process's spool
segment, no database). ``drain`` moves spooled records into ``PredictionLog`` and
``PredictionMinuteStat`` in bulk: it runs in a background thread of every serving process (every
``SERVING_DRAIN_INTERVAL`` s) and as the Celery beat task ``workers.deployments.prediction_log_drain``
(which also picks up segments left by dead processes). Inserts are idempotent by ``request_id``
(unique; ``ON CONFLICT DO NOTHING``), so replaying a segment after a crash never duplicates a row,
and minute statistics count only the rows actually inserted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import orjson
from django.conf import settings
from django.db import close_old_connections, connection, transaction

from apps.common.logging import iso_utc

from . import spool, stats

logger = logging.getLogger("slipway.serving.log")

_writer: spool.SpoolWriter | None = None
_writer_lock = threading.Lock()
_thread: threading.Thread | None = None
_thread_pid: int | None = None


def spool_dir():
    return settings.SERVING_SPOOL_DIR


def writer() -> spool.SpoolWriter:
    global _writer
    if _writer is None:
        with _writer_lock:
            if _writer is None:
                _writer = spool.SpoolWriter(spool_dir(), fsync=settings.SERVING_SPOOL_FSYNC,
                                            max_bytes=settings.SERVING_SPOOL_SEGMENT_BYTES,
                                            max_age=settings.SERVING_SPOOL_SEGMENT_SECONDS)
                ensure_background()
    return _writer


def record_prediction(*, deployment_id: int, version_id: int, batch_id: str, ts: float, latency_ms: float,
                      rows: list) -> None:
    """Append one answered request (``rows``: [request_id, inputs dict, output, probabilities, entity_key]).

    The caller guarantees finite numbers (orjson would write NaN as null)."""
    writer().append(orjson.dumps({"k": "p", "t": ts, "d": deployment_id, "v": version_id, "b": batch_id,
                                  "l": round(latency_ms, 3), "r": rows}, option=orjson.OPT_APPEND_NEWLINE))


def record_health(*, ts: float) -> None:
    """The readiness probe's append (same write path as a prediction; the drainer skips it)."""
    writer().append(orjson.dumps({"k": "h", "t": ts}) + b"\n")


def record_error(*, deployment_id: int, version_id: int, ts: float, status: int) -> None:
    writer().append(orjson.dumps({"k": "e", "t": ts, "d": deployment_id, "v": version_id, "s": status}) + b"\n")


# --- the drainer -------------------------------------------------------------------------------


def _minute(ts: float) -> datetime:
    return datetime.fromtimestamp(ts - ts % 60, UTC)


def sink(lines: list[bytes]) -> None:
    """Insert a batch of spooled lines; idempotent. Raises on database errors (nothing is acknowledged).

    The drainer runs in the serving processes, so its CPU is taken from predictions: lines are parsed
    with orjson and, on PostgreSQL, turned straight into COPY text rows (no model instances, JSON
    re-encoded by orjson); SQLite takes the portable ORM path.
    """
    from .models import PredictionMinuteStat

    rows: list[tuple] = []  # (request_id str, batch str, dep, ver, created (unix s), entity, inputs, output, probs, latency)
    per_request: list[tuple] = []  # (key, [request ids], latency)
    errors: dict[tuple, int] = defaultdict(int)
    minutes: dict[float, datetime] = {}  # by t // 60
    for raw in lines:
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError:
            logger.error("Skipping a corrupt prediction-spool line", extra={"line": raw[:200].decode("utf-8", "replace")})
            continue
        if rec.get("k") == "h":
            continue
        t = rec["t"]
        minute = minutes.get(t // 60)
        if minute is None:
            minute = minutes[t // 60] = _minute(t)
        key = (rec["d"], rec["v"], minute)
        if rec.get("k") == "e":
            errors[key] += 1
            continue
        batch, dep, ver, latency = rec["b"], rec["d"], rec["v"], rec["l"]
        ids = []
        for rid, inputs, output, probs, entity in rec["r"]:
            ids.append(rid)
            rows.append((rid, batch, dep, ver, t, entity, inputs, output, probs, latency))
        per_request.append((key, ids, latency))
    with transaction.atomic():
        if connection.vendor == "postgresql":
            inserted = _insert_postgres(rows)
        else:
            inserted = _insert_orm(rows)
        agg: dict[tuple, dict] = {}
        for key, ids, latency in per_request:
            new_rows = sum(1 for rid in ids if rid in inserted)
            if not new_rows:
                continue
            a = agg.setdefault(key, {"requests": 0, "rows": 0, "errors": 0, "lat": 0.0, "hist": stats.empty_hist()})
            a["requests"] += 1
            a["rows"] += new_rows
            a["lat"] += latency
            a["hist"][stats.bucket_of(latency)] += 1
        for key, n in errors.items():
            a = agg.setdefault(key, {"requests": 0, "rows": 0, "errors": 0, "lat": 0.0, "hist": stats.empty_hist()})
            a["errors"] += n
        if connection.vendor == "postgresql":
            _add_stats_postgres(agg)
            return
        for (dep, ver, minute), a in agg.items():
            stat, _ = PredictionMinuteStat.objects.select_for_update().get_or_create(
                deployment_id=dep, version_id=ver, minute=minute)
            stat.requests += a["requests"]
            stat.rows += a["rows"]
            stat.errors += a["errors"]
            stat.latency_sum_ms += a["lat"]
            stat.latency_hist = stats.merge(list(stat.latency_hist or []), a["hist"])
            stat.save(update_fields=["requests", "rows", "errors", "latency_sum_ms", "latency_hist"])


# One statement for every (deployment, version, minute) of a batch: insert, or add to the stored row under its
# row lock (ON CONFLICT DO UPDATE) — what select_for_update + get_or_create + save did per key, in one round trip
# instead of two or three ORM queries per key (with 50 deployments that was most of the drainer's CPU). The
# histogram is added element by element, the shorter one padded with zeros (stats.merge).
_STATS_UPSERT = """
INSERT INTO deployments_predictionminutestat AS s
    ("deployment_id", "version_id", "minute", "requests", "rows", "errors", "latency_sum_ms", "latency_hist")
SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::integer[], %s::integer[], %s::integer[],
                     %s::double precision[], %s::jsonb[])
ON CONFLICT ("deployment_id", "version_id", "minute") DO UPDATE SET
    "requests" = s."requests" + EXCLUDED."requests",
    "rows" = s."rows" + EXCLUDED."rows",
    "errors" = s."errors" + EXCLUDED."errors",
    "latency_sum_ms" = s."latency_sum_ms" + EXCLUDED."latency_sum_ms",
    "latency_hist" = (
        SELECT COALESCE(jsonb_agg(COALESCE(a.v::numeric, 0) + COALESCE(b.v::numeric, 0) ORDER BY COALESCE(a.i, b.i)),
                        '[]'::jsonb)
        FROM jsonb_array_elements(COALESCE(s."latency_hist", '[]'::jsonb)) WITH ORDINALITY AS a(v, i)
        FULL JOIN jsonb_array_elements(EXCLUDED."latency_hist") WITH ORDINALITY AS b(v, i) ON a.i = b.i)
"""


def _add_stats_postgres(agg: dict) -> None:
    if not agg:
        return
    keys = sorted(agg, key=lambda k: (k[0], k[1], k[2]))  # one lock order for concurrent drainers
    cols: list[list] = [[] for _ in range(8)]
    for key in keys:
        a = agg[key]
        for col, value in zip(cols, (key[0], key[1], key[2], a["requests"], a["rows"], a["errors"], a["lat"],
                                     orjson.dumps(a["hist"]).decode()), strict=True):
            col.append(value)
    with connection.cursor() as cursor:
        cursor.execute(_STATS_UPSERT, cols)


_COLUMNS = ("request_id", "batch_id", "deployment_id", "version_id", "created_at", "entity_key", "inputs", "output",
            "probabilities", "latency_ms")


def _insert_orm(rows: list[tuple]) -> set:
    """Portable path (SQLite): skip ids already stored, bulk insert the rest. Returns inserted ids (str)."""
    from .models import PredictionLog

    existing = set()
    all_ids = [uuid.UUID(r[0]) for r in rows]
    for i in range(0, len(all_ids), 500):
        existing.update(PredictionLog.objects.filter(request_id__in=all_ids[i:i + 500])
                        .values_list("request_id", flat=True))
    fresh, seen = [], set()
    for rid, (_, batch, dep, ver, created, entity, inputs, output, probs, latency) in zip(all_ids, rows, strict=True):
        if rid in existing or rid in seen:
            continue
        seen.add(rid)
        fresh.append(PredictionLog(request_id=rid, batch_id=uuid.UUID(batch), deployment_id=dep, version_id=ver,
                                   created_at=datetime.fromtimestamp(created, UTC), entity_key=entity, inputs=inputs, output=output,
                                   probabilities=probs, latency_ms=latency))
    PredictionLog.objects.bulk_create(fresh, batch_size=500, ignore_conflicts=True)
    return {str(log.request_id) for log in fresh}


# COPY text format: backslash, newline, carriage return and tab are escaped; NULL is \N.
_COPY_ESCAPE = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    if "\\" in text or "\n" in text or "\r" in text or "\t" in text:
        return text.translate(_COPY_ESCAPE)
    return text  # the common case (ids, plain keys): nothing to escape


def _copy_json(value) -> str:
    # orjson never emits raw control characters; only its backslash escapes need doubling for COPY.
    return "\\N" if value is None else orjson.dumps(value).decode().replace("\\", "\\\\")


def _insert_postgres(rows: list[tuple]) -> set:
    """PostgreSQL: COPY straight into the log table (the common case: nothing of the batch is stored yet).
    A replayed segment (after a crash) makes that COPY hit the unique request id: the savepoint rolls it
    back and the batch goes through a temporary table and INSERT … ON CONFLICT (request_id) DO NOTHING
    RETURNING request_id instead. Either way: the exact ids (str) of the rows that were new."""
    if not rows:
        return set()
    import psycopg
    from django.db import IntegrityError

    cols = ", ".join(_COLUMNS)
    times: dict[float, str] = {}
    parts = []
    for rid, batch, dep, ver, created, entity, inputs, output, probs, latency in rows:
        ts = times.get(created)
        if ts is None:
            ts = times[created] = iso_utc(created)  # = datetime.fromtimestamp(created, UTC).isoformat()
        parts.append(f"{_copy_text(rid)}\t{_copy_text(batch)}\t{int(dep)}\t{int(ver)}\t{ts}\t{_copy_text(entity)}\t"
                     f"{_copy_json(inputs)}\t{_copy_json(output)}\t{_copy_json(probs)}\t{float(latency)!r}\n")
    data = "".join(parts).encode()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY deployments_predictionlog ({cols}) FROM STDIN") as copy:
                copy.write(data)
        return {r[0] for r in rows}
    except (IntegrityError, psycopg.errors.UniqueViolation):
        pass  # some rows are stored already (the savepoint is rolled back): the idempotent path below
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS slipway_predlog_in (request_id uuid, batch_id uuid, deployment_id bigint, "
            "version_id bigint, created_at timestamptz, entity_key text, inputs jsonb, output jsonb, "
            "probabilities jsonb, latency_ms double precision) ON COMMIT DELETE ROWS")
        with cursor.cursor.copy(f"COPY slipway_predlog_in ({cols}) FROM STDIN") as copy:
            copy.write(data)
        cursor.execute(f"INSERT INTO deployments_predictionlog ({cols}) SELECT {cols} FROM slipway_predlog_in "
                       "ON CONFLICT (request_id) DO NOTHING RETURNING request_id")
        inserted = {str(row[0]) for row in cursor.fetchall()}
        cursor.execute("DELETE FROM slipway_predlog_in")
    return inserted


def drain() -> int:
    """Drain this host's spool folder once. Returns the number of records moved (-1: another drainer)."""
    return spool.drain_once(spool_dir(), sink, batch_lines=settings.SERVING_DRAIN_BATCH)


def _drain_safely() -> None:
    try:
        close_old_connections()
        drain()
    except Exception:  # noqa: BLE001 - the database may be down: retry on the next round
        logger.warning("Prediction log drain failed; will retry", exc_info=True)
        try:
            connection.close()
        except Exception:  # noqa: BLE001
            pass


def _background_loop() -> None:
    last_drain = 0.0
    while True:
        interval = settings.SERVING_DRAIN_INTERVAL
        time.sleep(min(0.2, interval))
        w = _writer
        if w is not None:
            try:
                w.sync()
            except OSError:  # pragma: no cover
                logger.exception("fdatasync of the prediction spool failed")
        if not settings.SERVING_DRAIN_IN_PROCESS or time.monotonic() - last_drain < interval:
            continue
        last_drain = time.monotonic()
        _drain_safely()


def ensure_background() -> None:
    """Start this process's background thread (once per process, also after a fork): the interval
    fsync of its spool segment, and — with ``SERVING_DRAIN_IN_PROCESS`` — the drain."""
    global _thread, _thread_pid
    import os

    if not settings.SERVING_DRAIN_IN_PROCESS and settings.SERVING_SPOOL_FSYNC != "interval":
        return
    if _thread is not None and _thread_pid == os.getpid() and _thread.is_alive():
        return
    _thread_pid = os.getpid()
    _thread = threading.Thread(target=_background_loop, name="slipway-log-drain", daemon=True)
    _thread.start()


def drain_forever(*, parent: int | None = None, stop: threading.Event | None = None) -> None:
    """The drainer process (``python -m portal.entrypoint drain``; gunicorn starts one next to its workers):
    drain every ``SERVING_DRAIN_INTERVAL`` seconds. In its own process it never holds a serving worker's
    GIL — as a thread inside the workers it cost a third of their throughput. Each round it also keeps the
    host's serving-state snapshot current (one tiny query; a full read only when the generation changed),
    so a worker that starts during a database outage knows every deployment even on an idle host — and the
    file of small online views (one tiny query; a full read only after a materialization).
    Exits when ``parent`` (the gunicorn master) is gone, or on SIGTERM/SIGINT after one last drain (the
    Celery beat drain covers any gap)."""
    import os

    if stop is None:  # the entry point installs its handlers before Django starts; else do it here
        stop = drainer_stop_on_signals()
    interval = settings.SERVING_DRAIN_INTERVAL
    if settings.SERVING_DRAINER_NICE:
        # Serving first: under full CPU the drainer (and the inserts it drives) yields to the workers and
        # the spool absorbs the peak (slipway_prediction_log_backlog_bytes shows it); it catches up after.
        os.nice(settings.SERVING_DRAINER_NICE)
    logger.info("Prediction log drainer started", extra={"spool": str(spool_dir()), "interval_s": interval,
                                                         "nice": settings.SERVING_DRAINER_NICE})
    generation, online = None, None
    while not stop.is_set() and (parent is None or os.getppid() == parent):
        started = time.monotonic()
        _drain_safely()
        generation = _refresh_snapshot(generation)
        online = _refresh_online_snapshot(online)
        stop.wait(max(0.05, interval - (time.monotonic() - started)))
    if stop.is_set():
        _drain_safely()  # the workers have closed their segments by now: flush what they left
        logger.info("Prediction log drainer stopped after a final drain")


def drainer_stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT: the drainer finishes its round, drains once more and exits."""
    import signal

    stop = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001 - signal handler signature
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop


def _refresh_snapshot(known: int | None) -> int | None:
    from .serving_state import snapshot_refresh

    try:
        return snapshot_refresh(settings.SERVING_STATE_SNAPSHOT, known_generation=known)
    except Exception:  # noqa: BLE001 - database down or disk full: keep the file we have, retry next round
        try:
            connection.close()
        except Exception:  # noqa: BLE001
            pass
        return known


def _refresh_online_snapshot(known: dict | None) -> dict | None:
    """Keep the host's file of small online views current (see serving_state / online_cache)."""
    from .serving_state import online_snapshot_refresh

    try:
        return online_snapshot_refresh(settings.SERVING_ONLINE_SNAPSHOT, state_path=settings.SERVING_STATE_SNAPSHOT,
                                       known=known, max_rows=settings.SERVING_ONLINE_PRELOAD_ROWS)
    except Exception:  # noqa: BLE001 - database down or disk full: keep the file we have, retry next round
        try:
            connection.close()
        except Exception:  # noqa: BLE001
            pass
        return known


def flush_own_segment() -> None:
    """Close this process's segment (tests / shutdown) so a drainer can finish it."""
    w = _writer
    if w is not None:
        w.close()

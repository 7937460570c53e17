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

import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from django.conf import settings
from django.db import close_old_connections, connection, transaction

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
    """Append one answered request (``rows``: [request_id, inputs dict, output, probabilities, entity_key])."""
    line = json.dumps({"k": "p", "t": ts, "d": deployment_id, "v": version_id, "b": batch_id,
                       "l": round(latency_ms, 3), "r": rows}, separators=(",", ":"), allow_nan=False)
    writer().append(line.encode() + b"\n")


def record_error(*, deployment_id: int, version_id: int, ts: float, status: int) -> None:
    line = json.dumps({"k": "e", "t": ts, "d": deployment_id, "v": version_id, "s": status},
                      separators=(",", ":"))
    writer().append(line.encode() + b"\n")


# --- the drainer -------------------------------------------------------------------------------


def _minute(ts: float) -> datetime:
    return datetime.fromtimestamp(ts - ts % 60, UTC)


def sink(lines: list[bytes]) -> None:
    """Insert a batch of spooled lines; idempotent. Raises on database errors (nothing is acknowledged)."""
    from .models import PredictionLog, PredictionMinuteStat

    logs: list[PredictionLog] = []
    per_request: list[tuple] = []  # (key, first row id, n rows, latency)
    errors: dict[tuple, int] = defaultdict(int)
    for raw in lines:
        try:
            rec = json.loads(raw)
        except ValueError:
            logger.error("Skipping a corrupt prediction-spool line", extra={"line": raw[:200].decode("utf-8", "replace")})
            continue
        key = (rec["d"], rec["v"], _minute(rec["t"]))
        if rec.get("k") == "e":
            errors[key] += 1
            continue
        created = datetime.fromtimestamp(rec["t"], UTC)
        batch = uuid.UUID(rec["b"])
        ids = []
        for rid, inputs, output, probs, entity in rec["r"]:
            rid = uuid.UUID(rid)
            ids.append(rid)
            logs.append(PredictionLog(request_id=rid, batch_id=batch, deployment_id=rec["d"], version_id=rec["v"],
                                      created_at=created, entity_key=entity, inputs=inputs, output=output,
                                      probabilities=probs, latency_ms=rec["l"]))
        per_request.append((key, ids, rec["l"]))
    with transaction.atomic():
        if connection.vendor == "postgresql":
            inserted = _insert_postgres(logs)
        else:
            inserted = _insert_orm(logs)
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
        for (dep, ver, minute), a in agg.items():
            stat, _ = PredictionMinuteStat.objects.select_for_update().get_or_create(
                deployment_id=dep, version_id=ver, minute=minute)
            stat.requests += a["requests"]
            stat.rows += a["rows"]
            stat.errors += a["errors"]
            stat.latency_sum_ms += a["lat"]
            stat.latency_hist = stats.merge(list(stat.latency_hist or []), a["hist"])
            stat.save(update_fields=["requests", "rows", "errors", "latency_sum_ms", "latency_hist"])


_COLUMNS = ("request_id", "batch_id", "deployment_id", "version_id", "created_at", "entity_key", "inputs", "output",
            "probabilities", "latency_ms")


def _insert_orm(logs: list) -> set:
    """Portable path (SQLite): skip ids already stored, bulk insert the rest. Returns inserted ids."""
    from .models import PredictionLog

    existing = set()
    all_ids = [log.request_id for log in logs]
    for i in range(0, len(all_ids), 500):
        existing.update(PredictionLog.objects.filter(request_id__in=all_ids[i:i + 500])
                        .values_list("request_id", flat=True))
    fresh = [log for log in logs if log.request_id not in existing]
    PredictionLog.objects.bulk_create(fresh, batch_size=500, ignore_conflicts=True)
    return {log.request_id for log in fresh}


def _insert_postgres(logs: list) -> set:
    """PostgreSQL: COPY into a temporary table, then INSERT … ON CONFLICT (request_id) DO NOTHING
    RETURNING request_id — one round trip per batch, exact ids of the rows that were new."""
    if not logs:
        return set()
    cols = ", ".join(_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS slipway_predlog_in (request_id uuid, batch_id uuid, deployment_id bigint, "
            "version_id bigint, created_at timestamptz, entity_key text, inputs jsonb, output jsonb, "
            "probabilities jsonb, latency_ms double precision) ON COMMIT DELETE ROWS")
        raw = cursor.cursor  # the psycopg cursor underneath Django's wrapper
        with raw.copy(f"COPY slipway_predlog_in ({cols}) FROM STDIN") as copy:
            for log in logs:
                copy.write_row((log.request_id, log.batch_id, log.deployment_id, log.version_id, log.created_at,
                                log.entity_key, json.dumps(log.inputs), json.dumps(log.output),
                                None if log.probabilities is None else json.dumps(log.probabilities),
                                log.latency_ms))
        cursor.execute(f"INSERT INTO deployments_predictionlog ({cols}) SELECT {cols} FROM slipway_predlog_in "
                       "ON CONFLICT (request_id) DO NOTHING RETURNING request_id")
        inserted = {row[0] for row in cursor.fetchall()}
        cursor.execute("DELETE FROM slipway_predlog_in")
    return {x if isinstance(x, uuid.UUID) else uuid.UUID(str(x)) for x in inserted}


def drain() -> int:
    """Drain this host's spool folder once. Returns the number of records moved (-1: another drainer)."""
    return spool.drain_once(spool_dir(), sink, batch_lines=settings.SERVING_DRAIN_BATCH)


def _background_loop() -> None:
    interval = settings.SERVING_DRAIN_INTERVAL
    last_drain = 0.0
    while True:
        time.sleep(min(0.2, interval))
        w = _writer
        if w is not None:
            try:
                w.sync()
            except OSError:  # pragma: no cover
                logger.exception("fdatasync of the prediction spool failed")
        if time.monotonic() - last_drain < interval:
            continue
        last_drain = time.monotonic()
        try:
            close_old_connections()
            drain()
        except Exception:  # noqa: BLE001 - the database may be down: retry on the next round
            logger.warning("Prediction log drain failed; will retry", exc_info=True)
            try:
                connection.close()
            except Exception:  # noqa: BLE001
                pass


def ensure_background() -> None:
    """Start the fsync + drain thread of this process (once per process, also after a fork)."""
    global _thread, _thread_pid
    import os

    if not settings.SERVING_DRAIN_IN_PROCESS:
        return
    if _thread is not None and _thread_pid == os.getpid() and _thread.is_alive():
        return
    _thread_pid = os.getpid()
    _thread = threading.Thread(target=_background_loop, name="slipway-log-drain", daemon=True)
    _thread.start()


def flush_own_segment() -> None:
    """Close this process's segment (tests / shutdown) so a drainer can finish it."""
    w = _writer
    if w is not None:
        w.close()

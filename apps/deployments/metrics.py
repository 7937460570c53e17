"""Prometheus instrumentation of serving (the standard ``prometheus_client``).

Under gunicorn with several workers set ``PROMETHEUS_MULTIPROC_DIR`` (a folder; ``gunicorn_conf``
creates and empties it at start, and start-up fails loudly when it cannot) and run gunicorn with
``-c python:apps.deployments.gunicorn_conf``; ``/metrics`` then aggregates all workers. Without it,
each process exposes its own numbers.

Observability never breaks serving: the request path updates metrics through ``safely`` (and the
success path's ``observe_ok`` is wrapped the same way), so a failure is logged and counted
(``slipway_observability_failures_total``, or this process's ``FAILURES`` when even that fails),
never turned into a dropped request.
"""

from __future__ import annotations

import logging
import os
import threading
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from apps.common import flusher
from apps.common.metrics import EXTRA_COLLECTORS, DatabaseCollector  # noqa: F401 - re-exported

from .hot_settings import hot

LATENCY_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

REQUESTS = Counter("slipway_predict_requests", "Prediction requests answered, by deployment, model version and "
                   "HTTP status", ["deployment", "version", "status"])
ERRORS = Counter("slipway_predict_errors", "Prediction requests answered with an error (4xx/5xx)",
                 ["deployment", "version", "reason"])
ROWS = Counter("slipway_predictions", "Predicted rows (instances)", ["deployment", "version"])
LATENCY = Histogram("slipway_predict_latency_seconds", "Server-side latency of prediction requests",
                    ["deployment", "version"], buckets=LATENCY_BUCKETS)
MODEL_LOADS = Counter("slipway_serving_model_loads", "Model versions loaded into a serving process "
                      "(reason: preload at start, or miss = a request found it not cached)", ["reason"])
MODEL_EVICTIONS = Counter("slipway_serving_model_evictions", "Model versions evicted from a serving process's "
                          "cache (least recently used first, to stay within SERVING_MODEL_CACHE_BYTES)")
MODEL_CACHE_BYTES = Gauge("slipway_serving_model_cache_bytes", "Measured size of the models cached by the live "
                          "serving processes", multiprocess_mode="livesum")
MODELS_CACHED = Gauge("slipway_serving_models_cached", "Model versions cached by the live serving processes",
                      multiprocess_mode="livesum")
STATE_OUTAGE = Gauge("slipway_serving_state_outage", "Serving processes answering from their last known state "
                     "because the database is unreachable", multiprocess_mode="livesum")
OBSERVABILITY_FAILURES = Counter("slipway_observability_failures", "Metric or access-log updates that failed "
                                 "(the request was answered anyway)", ["what"])

log = logging.getLogger("slipway.serving.metrics")
FAILURES = {"metrics": 0, "access_log": 0}  # this process, for when the metrics themselves are broken


def failed(what: str) -> None:
    """Log and count an observability failure; never raises."""
    FAILURES[what] = FAILURES.get(what, 0) + 1
    try:
        if FAILURES[what] in (1, 10, 100) or FAILURES[what] % 1000 == 0:
            log.error("Observability failure (%s, %d so far in this process); serving continues", what,
                      FAILURES[what], exc_info=True)
        OBSERVABILITY_FAILURES.labels(what).inc()
    except Exception:  # noqa: BLE001, S110 - the counter may be what is broken
        pass


def safely(fn, *args) -> None:
    """Run a metrics update; a failure is logged and counted, never raised into the request."""
    try:
        fn(*args)
    except Exception:  # noqa: BLE001
        failed("metrics")


def model_loaded(reason: str, evicted: int, cache_bytes: int, cached: int) -> None:
    MODEL_LOADS.labels(reason).inc()
    if evicted:
        MODEL_EVICTIONS.inc(evicted)
    MODEL_CACHE_BYTES.set(cache_bytes)
    MODELS_CACHED.set(cached)


def set_model_cache(cache_bytes: int, cached: int) -> None:
    MODEL_CACHE_BYTES.set(cache_bytes)
    MODELS_CACHED.set(cached)


def set_outage(on: bool) -> None:
    STATE_OUTAGE.set(1 if on else 0)


def ensure_multiproc_dir(*, wipe: bool = False) -> str | None:
    """Create ``PROMETHEUS_MULTIPROC_DIR`` (optionally emptied); raise ``RuntimeError`` naming the folder
    when it cannot be created or written, so start-up fails loudly instead of every request failing."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
    if not path:
        return None
    try:
        os.makedirs(path, exist_ok=True)
        if wipe:
            for name in os.listdir(path):
                if name.endswith(".db"):
                    os.unlink(os.path.join(path, name))
        probe = os.path.join(path, f".probe-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise RuntimeError(f"PROMETHEUS_MULTIPROC_DIR={path!r} cannot be created or written: {exc}") from exc
    return path


class SpoolBacklogCollector:
    """Backlog of the prediction log on this host: bytes and segments not yet in the database."""

    def collect(self):
        from django.conf import settings

        from .spool import backlog

        segments, pending = backlog(settings.SERVING_SPOOL_DIR)
        g = GaugeMetricFamily("slipway_prediction_log_backlog_bytes",
                              "Bytes of answered predictions spooled on this host and not yet in the database")
        g.add_metric([], pending)
        yield g
        s = GaugeMetricFamily("slipway_prediction_log_backlog_segments", "Spool segments with undrained records")
        s.add_metric([], segments)
        yield s




def render() -> bytes:
    flusher.flush_all()  # this process's batched updates first (the other workers flush on their own)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
        if not getattr(render, "_backlog_registered", False):
            REGISTRY.register(SpoolBacklogCollector())
            render._backlog_registered = True
        return generate_latest(registry)
    registry.register(SpoolBacklogCollector())
    for factory in EXTRA_COLLECTORS:
        registry.register(factory())
    return generate_latest(registry)


# The success path's updates are batched: ``observe_ok`` adds to this process's pending totals (a few list
# operations under a lock) and the observability flusher (apps.common.flusher) moves them into the
# Prometheus values every SERVING_OBSERVABILITY_FLUSH_S, before /metrics is rendered here and at a worker's
# exit. Prometheus's own updates cost four locked writes to the multi-process files per request.
_BOUNDS = LATENCY_BUCKETS  # Histogram adds +Inf: bucket i is the first bound >= the value (``value <= bound``)
_ok_children: dict = {}
_pending: dict[tuple[str, str], list] = {}  # (deployment, version) → [requests, rows, seconds, *bucket counts]
_pending_lock = threading.Lock()


def _reset_pending_after_fork() -> None:
    global _pending_lock
    _pending.clear()  # the parent's unflushed updates are the parent's to write
    _pending_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_pending_after_fork)


def observe_ok(deployment: str, version: str, rows: int, seconds: float) -> None:
    """Count one answered request (requests, rows, latency histogram). Never raises (see ``safely``)."""
    try:
        interval = settings_flush_interval()
        if interval <= 0:
            _apply(deployment, version, [1, rows, seconds, *_one_bucket(seconds)])
            return
        flusher.ensure_running(interval)
        slot = 3 + bisect_left(_BOUNDS, seconds)
        with _pending_lock:
            p = _pending.get((deployment, version))
            if p is None:
                p = _pending[(deployment, version)] = [0, 0, 0.0] + [0] * (len(_BOUNDS) + 1)
            p[0] += 1
            p[1] += rows
            p[2] += seconds
            p[slot] += 1
    except Exception:  # noqa: BLE001
        failed("metrics")


def _one_bucket(seconds: float) -> list[int]:
    out = [0] * (len(_BOUNDS) + 1)
    out[bisect_left(_BOUNDS, seconds)] = 1
    return out


def _apply(deployment: str, version: str, totals: list) -> None:
    children = _ok_children.get((deployment, version))
    if children is None:
        children = _ok_children[(deployment, version)] = (
            REQUESTS.labels(deployment, version, "200"), ROWS.labels(deployment, version),
            LATENCY.labels(deployment, version))
    requests, rows, seconds, buckets = totals[0], totals[1], totals[2], totals[3:]
    children[0].inc(requests)
    children[1].inc(rows)
    hist = children[2]
    hist._sum.inc(seconds)  # Histogram.observe, for many values at once (its sum and per-bucket counts)
    for i, n in enumerate(buckets):
        if n:
            hist._buckets[i].inc(n)


def flush() -> None:
    """Write this process's pending success-path updates into the Prometheus values."""
    with _pending_lock:
        batch = [(key, list(p)) for key, p in _pending.items() if p[0]]
        for p in _pending.values():
            p[:] = [0, 0, 0.0] + [0] * (len(_BOUNDS) + 1)
    for (deployment, version), totals in batch:
        try:
            _apply(deployment, version, totals)
        except Exception:  # noqa: BLE001
            failed("metrics")


def settings_flush_interval() -> float:
    return hot().flush_s


flusher.register(flush)


def observe_error(deployment: str, version: str, status: int, reason: str, seconds: float) -> None:
    REQUESTS.labels(deployment, version, str(status)).inc()
    ERRORS.labels(deployment, version, reason).inc()
    LATENCY.labels(deployment, version).observe(seconds)

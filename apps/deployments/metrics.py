"""Prometheus instrumentation of serving (the standard ``prometheus_client``).

Under gunicorn with several workers set ``PROMETHEUS_MULTIPROC_DIR`` (an empty folder, wiped at
start) and run gunicorn with ``-c python:apps.deployments.gunicorn_conf``; ``/metrics`` then
aggregates all workers. Without it, each process exposes its own numbers.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from apps.common.metrics import EXTRA_COLLECTORS, DatabaseCollector  # noqa: F401 - re-exported

LATENCY_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

REQUESTS = Counter("slipway_predict_requests", "Prediction requests answered, by deployment, model version and "
                   "HTTP status", ["deployment", "version", "status"])
ERRORS = Counter("slipway_predict_errors", "Prediction requests answered with an error (4xx/5xx)",
                 ["deployment", "version", "reason"])
ROWS = Counter("slipway_predictions", "Predicted rows (instances)", ["deployment", "version"])
LATENCY = Histogram("slipway_predict_latency_seconds", "Server-side latency of prediction requests",
                    ["deployment", "version"], buckets=LATENCY_BUCKETS)


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


_ok_children: dict = {}


def observe_ok(deployment: str, version: str, rows: int, seconds: float) -> None:
    """The success path's three updates, with the labelled children looked up once per process."""
    children = _ok_children.get((deployment, version))
    if children is None:
        children = _ok_children[(deployment, version)] = (
            REQUESTS.labels(deployment, version, "200"), ROWS.labels(deployment, version),
            LATENCY.labels(deployment, version))
    children[0].inc()
    children[1].inc(rows)
    children[2].observe(seconds)

"""Prometheus pieces every app may use (the ground floor): the base of gauges read from the database at
scrape time, and the list of collector classes that /metrics adds to its per-scrape registry."""

from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily


class DatabaseCollector:
    """Base of the gauges read from the database at scrape time (monitoring, feature freshness):
    ``describe`` names them without touching the database; a database error skips them, never the scrape.
    Subclasses set ``NAMES`` and ``LABEL`` and yield metric families from ``_collect``."""

    NAMES: tuple[str, ...] = ()
    LABEL = "database"

    def describe(self):
        return [GaugeMetricFamily(name, name) for name in self.NAMES]

    def collect(self):
        from django.db import DatabaseError

        try:
            yield from self._collect()
        except DatabaseError:  # a scrape must never fail because of us
            logging.getLogger(__name__).warning("%s metrics unavailable (database error)", self.LABEL)

    def _collect(self):  # pragma: no cover - abstract
        return iter(())

    @classmethod
    def register(cls, registry=None) -> None:
        """Add one instance to ``registry`` (default: the process registry) and to ``EXTRA_COLLECTORS``
        (gunicorn's multiprocess mode builds a fresh registry per scrape)."""
        from prometheus_client import REGISTRY

        registry = registry or REGISTRY
        flag = f"_slipway_{cls.__name__}"
        if not getattr(registry, flag, False):
            registry.register(cls())
            setattr(registry, flag, True)
        if cls not in EXTRA_COLLECTORS:
            EXTRA_COLLECTORS.append(cls)


# Collector classes that apps add in their AppConfig.ready() (monitoring, feature freshness), so /metrics
# (apps/deployments/metrics.py) exports their gauges in multiprocess mode too without importing those apps.
EXTRA_COLLECTORS: list = []

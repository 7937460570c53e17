"""Prometheus gauges of feature freshness, read from the database at scrape time (every web process
exports the same values). Registered like monitoring's collector: on the default registry, and in
``apps.common.metrics.EXTRA_COLLECTORS`` for gunicorn's multiprocess mode.

- ``slipway_feature_view_age_seconds{project, view}``: age of the newest value (online store for
  online views, the latest source version for batch views);
- ``slipway_feature_view_freshness_sla_seconds{project, view}``: the owner-set maximum staleness;
- ``slipway_feature_view_sla_breached{project, view}``: 1 when the SLA is breached (no value counts).

An Alertmanager rule such as ``slipway_feature_view_sla_breached == 1`` pages on a stale view; inside
Slipway, the monitoring metrics ``feature_sla_breaches`` and ``feature_staleness_ratio`` do the same per
deployment.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from apps.common.metrics import DatabaseCollector


class FeatureFreshnessCollector(DatabaseCollector):
    NAMES = ("slipway_feature_view_age_seconds", "slipway_feature_view_freshness_sla_seconds",
             "slipway_feature_view_sla_breached")
    LABEL = 'feature freshness'

    def _collect(self):
        from .models import FeatureView
        from .services import feature_view_freshness

        age = GaugeMetricFamily(self.NAMES[0], "Age of the view's newest value (seconds)", labels=["project", "view"])
        sla = GaugeMetricFamily(self.NAMES[1], "Freshness SLA of the view (seconds)", labels=["project", "view"])
        breached = GaugeMetricFamily(self.NAMES[2], "1 when the view's freshness SLA is breached",
                                     labels=["project", "view"])
        views = (FeatureView.objects.filter(is_current=True, project__archived_at__isnull=True)
                 .select_related("project", "source"))
        for view in views:
            f = feature_view_freshness(view=view)
            labels = [view.project.slug, view.name]
            if f["age_seconds"] is not None:
                age.add_metric(labels, f["age_seconds"])
            if f["sla_seconds"] is not None:
                sla.add_metric(labels, f["sla_seconds"])
                breached.add_metric(labels, 1.0 if f["breached"] else 0.0)
        yield from (age, sla, breached)

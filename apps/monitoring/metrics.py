"""Prometheus gauges of monitoring, read from the database at scrape time (so every web process
exports the same, current values — no per-process state to aggregate).

Registered on ``prometheus_client.REGISTRY`` by ``MonitoringConfig.ready()``; the serving app's
``/metrics`` renders that registry. (Under ``PROMETHEUS_MULTIPROC_DIR`` that view builds a fresh
registry: ``MonitoringConfig.ready()`` adds this collector to ``apps.common.metrics.EXTRA_COLLECTORS``.)
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from apps.common.metrics import DatabaseCollector


class MonitoringCollector(DatabaseCollector):
    NAMES = ("slipway_drift_share", "slipway_drift_feature_score", "slipway_drift_domain_auc",
             "slipway_drift_prediction_score", "slipway_model_performance", "slipway_alerts_open")
    LABEL = 'monitoring'

    def _collect(self):
        from django.db.models import Count

        from apps.deployments.models import Deployment

        from .models import Alert, AlertStatus, MonitoringWindow

        share = GaugeMetricFamily("slipway_drift_share", "Share of drifted features in the latest window",
                                  labels=["deployment"])
        feature = GaugeMetricFamily("slipway_drift_feature_score",
                                    "Per-feature drift score of the latest window (Wasserstein/sd or JS distance)",
                                    labels=["deployment", "feature"])
        domain = GaugeMetricFamily("slipway_drift_domain_auc", "Domain-classifier AUC of the latest window",
                                   labels=["deployment"])
        prediction = GaugeMetricFamily("slipway_drift_prediction_score", "Prediction-distribution drift score",
                                       labels=["deployment"])
        perf = GaugeMetricFamily("slipway_model_performance", "Performance of the latest window with a value",
                                 labels=["deployment", "metric", "source"])
        alerts = GaugeMetricFamily("slipway_alerts_open", "Open or acknowledged alerts",
                                   labels=["deployment", "severity"])
        for dep in Deployment.objects.only("id", "slug"):
            w = MonitoringWindow.objects.filter(deployment=dep).order_by("-end", "-id").first()
            if w is None:
                continue
            if w.share_drifted is not None:
                share.add_metric([dep.slug], w.share_drifted)
            for name, score in w.features.values_list("feature", "score"):
                feature.add_metric([dep.slug, name], score)
            if w.domain_auc is not None:
                domain.add_metric([dep.slug], w.domain_auc)
            if w.prediction_score is not None:
                prediction.add_metric([dep.slug], w.prediction_score)
            for source in ("estimated", "realized"):
                for metric, value in (getattr(w, source) or {}).items():
                    if value.get("value") is not None:
                        perf.add_metric([dep.slug, metric, source], value["value"])
        for row in (Alert.objects.filter(status__in=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED])
                    .values("deployment__slug", "severity").annotate(n=Count("id"))):
            alerts.add_metric([row["deployment__slug"], row["severity"]], row["n"])
        yield from (share, feature, domain, prediction, perf, alerts)

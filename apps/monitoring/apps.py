from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"

    def ready(self):
        from apps.deployments import metrics as serving_metrics

        from .metrics import MonitoringCollector, register

        register()  # the default registry (single-process servers)
        if MonitoringCollector not in serving_metrics.EXTRA_COLLECTORS:  # gunicorn multiprocess mode
            serving_metrics.EXTRA_COLLECTORS.append(MonitoringCollector)

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"

    def ready(self):
        from .metrics import MonitoringCollector

        MonitoringCollector.register()  # the process registry, and gunicorn's multiprocess /metrics

from django.apps import AppConfig


class FeaturesConfig(AppConfig):
    name = "apps.features"
    label = "features"

    def ready(self):
        from .metrics import FeatureFreshnessCollector

        FeatureFreshnessCollector.register()  # the process registry, and gunicorn's multiprocess /metrics

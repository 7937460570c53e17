from django.apps import AppConfig


class FeaturesConfig(AppConfig):
    name = "apps.features"
    label = "features"

    def ready(self):
        from apps.deployments import metrics as serving_metrics

        from .metrics import FeatureFreshnessCollector, register

        register()  # the default registry (single-process servers)
        if FeatureFreshnessCollector not in serving_metrics.EXTRA_COLLECTORS:  # gunicorn multiprocess mode
            serving_metrics.EXTRA_COLLECTORS.append(FeatureFreshnessCollector)

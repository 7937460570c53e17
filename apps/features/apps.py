from django.apps import AppConfig


class FeaturesConfig(AppConfig):
    name = "apps.features"
    label = "features"

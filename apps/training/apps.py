from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Training jobs (refit a version on a fresh point-in-time training set) and retraining policies
    (monitoring signals that start a training job, a shadow run and a promotion request)."""

    name = "apps.training"
    label = "training"

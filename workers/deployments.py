"""Celery tasks for the deployments app. Each task re-fetches by id, guards on status and calls one service."""

from celery import shared_task

from apps.deployments import services


@shared_task(name="workers.deployments.prediction_log_drain", acks_late=True, ignore_result=True)
def prediction_log_drain():
    """Safety net next to the in-process drainers: also finishes segments left by dead processes."""
    services.prediction_log_drain()


@shared_task(name="workers.deployments.prediction_log_prune", acks_late=True, ignore_result=True)
def prediction_log_prune():
    services.prediction_log_prune()


@shared_task(name="workers.deployments.serving_generation_bump", acks_late=True, ignore_result=True)
def serving_generation_bump():
    """Every serving process reloads deployment state within ~1 s (e.g. after a model's contract changed)."""
    services.serving_generation_bump()

"""Celery tasks for the monitoring app. Each task re-fetches by id, guards on status and calls one service."""

from datetime import datetime

from celery import shared_task

from apps.monitoring import services
from apps.projects.services import job_run

WEBHOOK_MAX_RETRIES = 5


@shared_task(name="workers.monitoring.monitoring_tick", acks_late=True)
def monitoring_tick(now: str | None = None):
    """Beat entry point (every ``MONITORING_TICK_SECONDS``); ``now`` (ISO) only for replays and tests."""
    return services.monitoring_tick(now=datetime.fromisoformat(now) if now else None)


@shared_task(name="workers.monitoring.monitoring_start", acks_late=True)
def monitoring_start(deployment_id: int):
    """Sent by the deployments app when a version goes live: calibration from its holdout, settings."""
    return services.monitoring_start(deployment_id=deployment_id)


@shared_task(name="workers.monitoring.drift_check_run", acks_late=True)
def drift_check_run(job_id):
    job_run(job_id=job_id, body=lambda job: services.drift_check_run(job=job))


@shared_task(name="workers.monitoring.outcomes_ingest_run", acks_late=True)
def outcomes_ingest_run(job_id):
    job_run(job_id=job_id, body=lambda job: services.outcomes_ingest_run(job=job))


@shared_task(name="workers.monitoring.performance_refresh", acks_late=True)
def performance_refresh(deployment_id: int, since: str, until: str):
    return services.performance_refresh(deployment_id=deployment_id, since=datetime.fromisoformat(since),
                                        until=datetime.fromisoformat(until))


@shared_task(name="workers.monitoring.notification_deliver", bind=True, acks_late=True,
             max_retries=WEBHOOK_MAX_RETRIES)
def notification_deliver(self, notification_id: int):
    """Retried with exponential backoff: base, 2×base, 4×base … (``MONITORING_WEBHOOK_BACKOFF_S``)."""
    from django.conf import settings

    final = self.request.retries >= self.max_retries
    if not services.notification_deliver(notification_id=notification_id, final_attempt=final):
        raise self.retry(countdown=settings.MONITORING_WEBHOOK_BACKOFF_S * 2 ** self.request.retries)

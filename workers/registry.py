"""Celery tasks for the registry app. Each task re-fetches by id, guards on status and calls one service."""

from celery import shared_task

from apps.projects import services
from apps.registry import services as registry_services


@shared_task(name="workers.registry.model_version_validate", acks_late=True)
def model_version_validate(job_id):
    services.job_run(job_id=job_id, body=lambda job: registry_services.model_version_validate(job=job))

"""Celery tasks for the projects app. Each task re-fetches by id, guards on status and calls one service."""

from celery import shared_task

from apps.projects import services


@shared_task(name="workers.projects.audit_export_run", acks_late=True)
def audit_export_run(job_id: str) -> None:
    services.job_run(job_id=job_id, body=lambda job: services.audit_export_run(job=job))

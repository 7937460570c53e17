"""Celery tasks for the features app. Each task re-fetches by id, guards on status and calls one service."""

from celery import shared_task

from apps.features import services as features
from apps.projects import services


@shared_task(name="workers.features.training_set_build_run", acks_late=True)
def training_set_build_run(job_id: str) -> None:
    services.job_run(job_id=job_id, body=lambda job: features.training_set_build_run(job=job))


@shared_task(name="workers.features.feature_view_materialize_run", acks_late=True)
def feature_view_materialize_run(job_id: str) -> None:
    services.job_run(job_id=job_id, body=lambda job: features.feature_view_materialize_run(job=job))


@shared_task(name="workers.features.feature_view_materialize_due", acks_late=True)
def feature_view_materialize_due() -> None:
    """Beat: start a materialization job for every online view whose schedule is due."""
    features.feature_view_materialize_due()


@shared_task(name="workers.features.data_source_ingest_run", acks_late=True)
def data_source_ingest_run(job_id: str) -> None:
    """A large or wide source upload, parsed and stored in the background."""
    services.job_run(job_id=job_id, body=lambda job: features.data_source_ingest_run(job=job))

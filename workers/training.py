"""Celery tasks for training and retraining. Each task re-fetches by id, guards on status and calls one service.

``workers.training.*`` run on the ``training`` queue (CELERY_TASK_ROUTES), so drift checks never wait
behind a long fit. The retraining tick is named ``workers.retraining.*`` so it stays on the default
queue: it only evaluates policies and advances their chains (it never trains itself).
"""

from datetime import datetime

from celery import shared_task

from apps.projects.services import job_run
from apps.training.services import jobs as training


@shared_task(name="workers.training.training_job_run", acks_late=True)
def training_job_run(job_id: str) -> None:
    job_run(job_id=job_id, body=lambda job: training.training_job_run(job=job))


@shared_task(name="workers.retraining.retraining_tick", acks_late=True, ignore_result=True)
def retraining_tick(now: str | None = None):
    """Beat entry point (every ``RETRAINING_TICK_SECONDS``); ``now`` (ISO) only for replays and tests."""
    from apps.training.services import retraining

    return retraining.retraining_tick(now=datetime.fromisoformat(now) if now else None)


@shared_task(name="workers.retraining.training_jobs_reap", acks_late=True, ignore_result=True)
def training_jobs_reap():
    """Beat: fail (or finish) training jobs whose worker died and whose message was not redelivered."""
    return training.training_jobs_reap()

"""Celery tasks of shadow runs. Each calls one service of apps/releases."""

from celery import shared_task

from apps.projects.services import job_run
from apps.releases.services import shadow


@shared_task(name="workers.releases.shadow_tick", acks_late=True, ignore_result=True)
def shadow_tick():
    """Beat: every active shadow run scores the newly logged traffic and refreshes its comparison."""
    shadow.shadow_tick()


@shared_task(name="workers.releases.shadow_run_score", acks_late=True, ignore_result=True)
def shadow_run_score(job_id):
    """On demand (a Job shown in the page)."""
    job_run(job_id=job_id, body=lambda job: shadow.shadow_run_score(job=job))


@shared_task(name="workers.releases.shadow_run_score_now", acks_late=True, ignore_result=True)
def shadow_run_score_now(run_id):
    """Right after a run starts (no Job row: the run's own counters show the progress)."""
    shadow.shadow_run_score_pending(run_id=run_id)

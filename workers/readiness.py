"""Readiness tasks: the daily snapshot of every project (the portfolio's trend reads them)."""

from celery import shared_task

from apps.readiness import services


@shared_task(name="workers.readiness.readiness_snapshot_daily", acks_late=True)
def readiness_snapshot_daily():
    return services.readiness_snapshot_daily()

"""Celery tasks for the common app (periodic housekeeping). Each calls one function of ``apps.common``."""

import logging

from celery import shared_task

from apps.common.idempotency import idempotency_records_prune

logger = logging.getLogger("slipway.tasks")


@shared_task(name="workers.common.idempotency_records_prune")
def idempotency_records_prune_task() -> int:
    deleted = idempotency_records_prune()
    if deleted:
        logger.info("Pruned %d expired Idempotency-Key records", deleted)
    return deleted

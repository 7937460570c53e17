"""Enqueue Celery work by task name, so no app imports ``workers/`` or ``portal/`` (both sit above).

``celery.current_app`` is the project's app once Django is configured (``portal/__init__.py`` imports
``portal.celery``), and ``send_task`` applies the configured routes (``training`` queue and so on) by name.
"""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction

logger = logging.getLogger("slipway.tasks")


def task_send(name: str, *args, queue: str | None = None, best_effort: bool = False) -> None:
    """Send the task ``name`` with positional ``args`` now. With ``best_effort`` a broker error is logged
    instead of raised (for work that a periodic tick also catches up)."""
    from celery import current_app

    options = {"queue": queue} if queue else {}
    try:
        current_app.send_task(name, args=list(args), **options)
    except Exception:
        if not best_effort:
            raise
        logger.warning("Could not enqueue %s%r; a periodic task will catch up", name, args)


def task_send_on_commit(name: str, *args, queue: str | None = None, best_effort: bool = False) -> None:
    """Send the task ``name`` once the surrounding transaction commits (at once outside a transaction)."""
    transaction.on_commit(partial(task_send, name, *args, queue=queue, best_effort=best_effort))

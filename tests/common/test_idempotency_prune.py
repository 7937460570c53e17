"""Idempotency-Key records expire: the beat task (sent by name to a real worker) deletes the records older
than SLIPWAY_IDEMPOTENCY_RETENTION_HOURS and keeps the rest."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.common.models import IdempotencyRecord
from apps.common.tasks import task_send
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _record(scope: str, age: timedelta) -> IdempotencyRecord:
    rec = IdempotencyRecord.objects.create(scope=scope.ljust(64, "0"), fingerprint="f" * 64)
    IdempotencyRecord.objects.filter(pk=rec.pk).update(created_at=timezone.now() - age)
    return rec


def test_the_beat_task_deletes_expired_records_in_a_real_worker(celery_worker, settings):
    from django.conf import settings as live

    assert live.CELERY_BEAT_SCHEDULE["common-idempotency-records-prune"]["task"] == \
        "workers.common.idempotency_records_prune"
    settings.IDEMPOTENCY_RETENTION_HOURS = 24  # the worker thread reads the same settings object
    old = [_record(f"old{i}", timedelta(hours=25 + i)) for i in range(3)]
    fresh = [_record("fresh", timedelta(hours=23)), _record("new", timedelta(0))]
    task_send("workers.common.idempotency_records_prune")
    wait_for(lambda: not IdempotencyRecord.objects.filter(pk__in=[r.pk for r in old]).exists(), timeout=30,
             message="expired records deleted")
    assert set(IdempotencyRecord.objects.values_list("pk", flat=True)) == {r.pk for r in fresh}


def test_prune_deletes_in_batches_only_what_expired(settings):
    from apps.common.idempotency import idempotency_records_prune

    settings.IDEMPOTENCY_RETENTION_HOURS = 1
    for i in range(7):
        _record(f"b{i}", timedelta(hours=2))
    _record("keep", timedelta(minutes=30))
    assert idempotency_records_prune(batch=3) == 7
    assert IdempotencyRecord.objects.count() == 1
    assert idempotency_records_prune() == 0

"""``Idempotency-Key``: where an operation honours it, a retry with the same key and the same body gets
the first result (the service looks it up), and the same key with a different body is a 409.

Handlers call :func:`idempotency_key` instead of reading the header; it validates the key, records the
body's fingerprint under (caller, method, path, key) and refuses a mismatch. The operation documents
the header with ``openapi_extra=IDEMPOTENT`` (``apps.common.schemas``).

Records are kept for ``SLIPWAY_IDEMPOTENCY_RETENTION_HOURS`` (default 168, a week): the Celery beat task
``workers.common.idempotency_records_prune`` deletes older ones (:func:`idempotency_records_prune`), after
which a key may be used again for another body.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .edge import text_problem
from .errors import Conflict, InvalidInput
from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_LENGTH = 100


def _fingerprint(request) -> str:
    h = hashlib.sha256()
    ctype = request.META.get("CONTENT_TYPE", "")
    if ctype.startswith("multipart/form-data") or ctype.startswith("application/x-www-form-urlencoded"):
        for key in sorted(request.POST):
            h.update(f"{key}\0{request.POST.getlist(key)!r}\0".encode())
        for key in sorted(request.FILES):
            for upload in request.FILES.getlist(key):
                h.update(f"{key}\0{upload.name}\0{upload.size}\0".encode())
                for chunk in upload.chunks():
                    h.update(chunk)
                upload.seek(0)
    else:
        h.update(request.body)
    return h.hexdigest()


def idempotency_key(request) -> str | None:
    """The request's Idempotency-Key (None without one), after refusing its reuse with another body."""
    key = request.headers.get(HEADER)
    if not key:
        return None
    if len(key) > MAX_LENGTH or text_problem(key):
        raise InvalidInput(f"{HEADER} must be at most {MAX_LENGTH} printable characters", field=HEADER)
    caller = getattr(request.auth, "pk", None) if hasattr(request, "auth") else None
    scope = hashlib.sha256(f"{caller}\0{request.method}\0{request.path}\0{key}".encode()).hexdigest()
    fingerprint = _fingerprint(request)
    try:
        with transaction.atomic():
            record, created = IdempotencyRecord.objects.get_or_create(scope=scope,
                                                                      defaults={"fingerprint": fingerprint})
    except IntegrityError:  # a concurrent first use won
        record, created = IdempotencyRecord.objects.get(scope=scope), False
    if not created and record.fingerprint != fingerprint:
        raise Conflict(f"This {HEADER} was already used with a different request body; use a new key",
                       field=HEADER)
    return key


def idempotency_records_prune(*, now: datetime | None = None, batch: int = 10_000) -> int:
    """Delete the records older than the retention (``settings.IDEMPOTENCY_RETENTION_HOURS``), in batches;
    returns how many were deleted."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_RETENTION_HOURS)
    deleted = 0
    while True:
        ids = list(IdempotencyRecord.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]

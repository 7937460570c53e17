from django.db import models


class IdempotencyRecord(models.Model):
    """The first request seen under an ``Idempotency-Key`` (per caller, method and path): its body's
    fingerprint. A retry with the same body gets the first result from the service; a different body is a
    409 (``apps.common.idempotency``)."""

    scope = models.CharField(max_length=64, unique=True)  # sha256(caller, method, path, key)
    fingerprint = models.CharField(max_length=64)  # sha256 of the request body (fields and files)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return self.scope[:12]

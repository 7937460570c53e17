"""One error hierarchy for the domain layer. Each transport maps it in exactly one place:
``portal/api.py`` (JSON) and ``apps/common/views.py`` helpers (forms/pages)."""

from django.core.exceptions import PermissionDenied  # noqa: F401  (re-exported: the 403 of the domain)


class ApplicationError(Exception):
    status_code = 400

    def __init__(self, message: str, *, errors: list[dict] | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])
        if field is not None:
            self.errors.append({"field": field, "message": message})


class InvalidInput(ApplicationError):
    status_code = 422


class NotFound(ApplicationError):
    status_code = 404


class Conflict(ApplicationError):
    status_code = 409


class PayloadTooLarge(ApplicationError):
    status_code = 413


class UnsupportedMediaType(ApplicationError):
    status_code = 415


class Unavailable(ApplicationError):
    status_code = 503

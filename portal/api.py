"""The one NinjaAPI: /api/v1/, OpenAPI at /api/openapi.json, docs at /api/docs.

Authentication: a personal token (``Authorization: Bearer slw_...``) or the browser session (with
CSRF). Domain errors are mapped to JSON here, once: ``{"detail": ..., "errors": [{field, message}]}``.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from apps.common.errors import ApplicationError
from apps.projects.auth import BrowserSessionAuth, TokenAuth

api = NinjaAPI(
    title="Slipway API",
    version="1",
    description="Projects, feature store, model registry, deployments and monitoring.",
    auth=[TokenAuth(), BrowserSessionAuth()],
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
)


def _error(request, status: int, detail: str, errors: list | None = None):
    return api.create_response(request, {"detail": detail, "errors": errors or []}, status=status)


@api.exception_handler(ApplicationError)
def _application_error(request, exc: ApplicationError):
    return _error(request, exc.status_code, exc.message, exc.errors)


@api.exception_handler(PermissionDenied)
def _permission_denied(request, exc):
    return _error(request, 403, str(exc) or "You do not have permission to do this")


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error(request, 404, str(exc) or "Not found")


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _error(request, 401, "Authentication required: send a valid API token (Bearer) or sign in")


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    return _error(request, exc.status_code, exc.message)


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    errors = []
    for err in exc.errors:
        loc = [str(p) for p in err.get("loc", []) if p not in ("body", "payload", "query", "path", "form")]
        errors.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid")})
    first = errors[0] if errors else {"field": None, "message": "invalid input"}
    detail = f"Invalid input: {first['field']}: {first['message']}" if first["field"] else f"Invalid input: {first['message']}"
    return _error(request, 422, detail, errors)


api.add_router("/", "apps.projects.api.router")
api.add_router("/", "apps.features.api.router")
api.add_router("/", "apps.registry.api.router")
api.add_router("/", "apps.deployments.api.router")
api.add_router("/", "apps.monitoring.api.router")
api.add_router("/", "apps.releases.api.router")
api.add_router("/", "apps.training.api.router")
api.add_router("/", "apps.readiness.api.router")

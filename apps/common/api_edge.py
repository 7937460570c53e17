"""The API's one error layer: every answer under ``/api/`` that is not 2xx is JSON
``{"detail": str, "errors": [{"field": str | None, "message": str}]}`` with the right status.

Two adapters use :func:`error_response`, the single mapping from an exception to that answer:

- ``portal/api.py`` registers it as django-ninja's handler for every exception an operation raises;
- :class:`ApiEdgeMiddleware` uses it for what ninja never sees (Django's 404/405 for unknown paths, the
  CSRF failure page, request bodies Django refuses to parse, any other 500) and, before anything runs,
  refuses path and query text that the database cannot store (``apps.common.edge``). Form and
  multipart fields are checked when the request first parses them, whoever asks for them.

A 500 carries only a request id (also in ``X-Request-ID`` and in the log line with the traceback).
"""

from __future__ import annotations

import logging
import uuid

from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import DataError
from django.http import Http404, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import Resolver404, resolve

from .edge import text_problem
from .errors import ApplicationError, InvalidInput

logger = logging.getLogger("slipway.api")

API_PREFIX = "/api/"
MAX_URL_BYTES = 8000  # path + query; below gunicorn's request-line cap of 8,190 (apps/deployments/gunicorn_conf.py)
REASONS = {400: "Bad request", 401: "Authentication required", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 406: "Not acceptable", 409: "Conflict", 413: "Request body too large", 414: "URL too long",
           415: "Unsupported media type", 422: "Invalid input", 429: "Too many requests",
           503: "Service unavailable"}


def json_error(status: int, detail: str, errors: list | None = None, *, headers: dict | None = None) -> JsonResponse:
    resp = JsonResponse({"detail": detail, "errors": list(errors or [])}, status=status)
    for name, value in (headers or {}).items():
        resp[name] = value
    return resp


def server_error(request, exc: BaseException | None = None) -> JsonResponse:
    """500 with a request id only: the traceback goes to the log under the same id, never to the client."""
    rid = request.META.get("HTTP_X_REQUEST_ID", "")
    try:
        rid = str(uuid.UUID(rid))
    except ValueError:
        rid = str(uuid.uuid4())
    if exc is not None:
        logger.error("Internal error in %s %s", request.method, request.path, exc_info=exc,
                     extra={"request_id": rid, "status": 500})
    resp = JsonResponse({"detail": f"Internal error; quote request id {rid} when reporting it", "errors": [],
                         "request_id": rid}, status=500)
    resp["X-Request-ID"] = rid
    return resp


def _validation_errors(exc) -> list[dict]:
    errors = []
    for err in exc.errors:
        loc = [str(p) for p in err.get("loc", []) if p not in ("body", "payload", "query", "path", "form", "file",
                                                                 "filters", "page")]
        message = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        elif err.get("type") == "missing":
            message = "required"
        errors.append({"field": ".".join(loc) or None, "message": message})
    return errors


def error_response(request, exc: BaseException) -> HttpResponse:
    """The JSON answer for any exception raised while handling an API request."""
    from ninja.errors import AuthenticationError, HttpError, ValidationError

    if isinstance(exc, HttpError) and isinstance(exc.__cause__, ApplicationError):
        exc = exc.__cause__  # raised by portal.api.SlipwayParser inside ninja's body parsing
    if isinstance(exc, ApplicationError):
        return json_error(exc.status_code, exc.message, exc.errors)
    if isinstance(exc, ValidationError):
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"field": None, "message": "invalid input"}
        detail = f"Invalid input: {first['field']}: {first['message']}" if first["field"] else \
            f"Invalid input: {first['message']}"
        return json_error(422, detail, errors)
    if isinstance(exc, AuthenticationError):
        if request.headers.get("Authorization", "").partition(" ")[2].strip().startswith("sdk_"):
            return json_error(401, "This is a deployment API key (sdk_…), which may only call its deployment's "
                                   "/predict; this endpoint takes a personal API token (slw_…, from Account → "
                                   "API tokens)", headers={"WWW-Authenticate": "Bearer"})
        return json_error(401, "Authentication required: send a valid API token (Bearer) or sign in",
                          headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, HttpError):
        detail = str(exc.message) if exc.status_code != 400 else "Malformed request body"
        return json_error(exc.status_code, detail)
    if isinstance(exc, (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)):
        return json_error(413, f"Request body too large: {exc}")
    if isinstance(exc, MultiPartParserError):
        return json_error(400, f"Malformed multipart body: {exc}")
    if isinstance(exc, (SuspiciousOperation, BadRequest)):
        return json_error(400, "Bad request")
    if isinstance(exc, DataError):  # e.g. a number beyond the column's range: the input, not the server
        logger.info("Refused input the database cannot store: %s", exc)
        return json_error(422, "Invalid input: a value is out of the range the database can store")
    if isinstance(exc, PermissionDenied):
        return json_error(403, str(exc) or "You do not have permission to do this")
    if isinstance(exc, Http404):
        return json_error(404, "Not found")
    return server_error(request, exc)


# --- the edge checks ------------------------------------------------------------------------------


def _path_problem(request) -> InvalidInput | None:
    problem = text_problem(request.path_info)
    if problem is None:
        return None
    field = "path"
    try:
        match = resolve(request.path_info)
        field = next((k for k, v in match.kwargs.items() if isinstance(v, str) and text_problem(v)), "path")
    except Resolver404:
        pass
    return InvalidInput(f"Invalid input: {field}: {problem}", field=field)


def querydict_problem(data, files=None) -> InvalidInput | None:
    """NUL/surrogate in any query, form or multipart field (names and values) or an uploaded file's name."""
    for key, values in data.lists():
        problem = text_problem(key)
        if problem:
            return InvalidInput(f"Invalid input: a field name {problem}", field=None)
        for value in values:
            problem = text_problem(value) if isinstance(value, str) else None
            if problem:
                return InvalidInput(f"Invalid input: {key}: {problem}", field=key)
    for key, uploads in (files.lists() if files is not None else ()):
        for upload in uploads:
            problem = text_problem(key) or text_problem(upload.name or "")
            if problem:
                return InvalidInput(f"Invalid input: {key}: the file name {problem}", field=key)
    return None


_checked_classes: dict[type, type] = {}


def _checked_request_class(cls: type) -> type:
    """``cls`` whose form/multipart parsing also refuses unstorable text (whoever reads request.POST)."""
    if cls not in _checked_classes:

        def _load_post_and_files(self):
            cls._load_post_and_files(self)
            problem = querydict_problem(self._post, self._files)
            if problem is not None:
                raise problem

        _checked_classes[cls] = type(f"Checked{cls.__name__}", (cls,),
                                     {"_load_post_and_files": _load_post_and_files})
    return _checked_classes[cls]


class ApiEdgeMiddleware:
    """First in MIDDLEWARE. For ``/api/`` only: refuse unstorable path/query text, map exceptions the
    views raise (ninja maps its own through the same function) and turn any non-JSON error page that
    Django or a middleware produced (404, 405, CSRF 403, 400) into the JSON error shape."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        too_long = len(request.META.get("QUERY_STRING", "")) + len(request.path_info) > MAX_URL_BYTES
        if not request.path_info.startswith(API_PREFIX):
            if too_long:  # pages too (under gunicorn, longer request lines never get here)
                return HttpResponse("URL too long", status=414, content_type="text/plain")
            return self.get_response(request)
        if too_long:
            return json_error(414, f"The URL is longer than {MAX_URL_BYTES:,} characters")
        problem = _path_problem(request) or querydict_problem(request.GET)
        if problem is not None:
            return error_response(request, problem)
        request.__class__ = _checked_request_class(request.__class__)
        return _as_json(self.get_response(request))

    def process_exception(self, request, exception):
        if not request.path_info.startswith(API_PREFIX):
            return None
        return error_response(request, exception)


def _as_json(response: HttpResponse) -> HttpResponse:
    if response.status_code < 400 or response.get("Content-Type", "").startswith("application/json"):
        return response
    status = response.status_code
    if status >= 500:
        out = json_error(status, "Internal error" if status == 500 else REASONS.get(status, "Service unavailable"))
    else:
        out = json_error(status, REASONS.get(status, "Request refused"))
    for header in ("Allow", "WWW-Authenticate", "Retry-After", "X-Request-ID"):
        if header in response:
            out[header] = response[header]
    return out

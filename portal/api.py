"""The one NinjaAPI: /api/v1/, OpenAPI at /api/openapi.json, docs at /api/docs.

Authentication: a personal token (``Authorization: Bearer slw_...``) or the browser session (with
CSRF). Domain errors are mapped to JSON here, once: ``{"detail": ..., "errors": [{field, message}]}``.
"""

import json

from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from pydantic.json_schema import models_json_schema

from apps.common.api_edge import error_response
from apps.common.edge import find_bad_text, json_text_may_be_bad
from apps.common.errors import ApplicationError, InvalidInput, UnsupportedMediaType
from apps.common.schemas import TOTAL_HEADER, ErrorOut
from apps.projects.auth import BrowserSessionAuth, TokenAuth


class MalformedBody(ApplicationError):
    status_code = 400


class SlipwayParser(Parser):
    """JSON bodies: sent as ``application/json`` (else 415), well-formed (else 400), an object (else 422),
    and free of text the database cannot store (else 422 naming the field)."""

    def parse_body(self, request):
        embedded = not request.META  # a schema field inside a multipart form (ninja parses it with a bare request)
        if not embedded:
            ctype = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
                raise UnsupportedMediaType(f"Send the body as application/json (got {ctype or 'no content type'!r})")
        try:
            text = request.body.decode("utf-8")
            data = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise MalformedBody(f"Malformed JSON body: {str(exc)[:200]}") from exc
        if not embedded and not isinstance(data, dict):
            raise InvalidInput(f"The body must be a JSON object, got {type(data).__name__}", field="body")
        if json_text_may_be_bad(text):
            found = find_bad_text(data)
            if found:
                raise InvalidInput(f"Invalid input: {found[0]}: {found[1]}", field=found[0])
        return data


ERROR_STATUSES = {
    400: "Malformed request (e.g. a body that is not JSON)",
    401: "Missing, invalid or revoked credentials",
    403: "Your role does not allow this",
    404: "No such object, or one you cannot see",
    409: "Conflicts with the current state (or an Idempotency-Key reused with another body)",
    413: "Request body too large",
    414: "URL too long (more than 8,192 characters of path and query)",
    415: "The body must be sent as application/json",
    422: "Invalid input; `errors` names each field",
    500: "Internal error; the answer carries only a request id",
}
_REF = "#/components/schemas/{model}"


class SlipwayAPI(NinjaAPI):
    """NinjaAPI plus what every operation shares: headers a handler asked for (``X-Total-Count``,
    ``Location``; see ``apps.common.schemas``), and an OpenAPI document that states the error answers,
    the pagination header and ``Location`` on every operation."""

    def create_response(self, request, data, *, status=None, temporal_response=None):
        response = super().create_response(request, data, status=status, temporal_response=temporal_response)
        for name, value in getattr(request, "slipway_headers", {}).items():
            response[name] = value
        return response

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        _, defs = models_json_schema([(ErrorOut, "serialization")], ref_template=_REF)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
        for path_item in schema["paths"].values():
            for method, op in path_item.items():
                _document_operation(method, op)
        return schema


def _document_operation(method: str, op: dict) -> None:
    responses = {str(code): value for code, value in op.get("responses", {}).items()}
    op["responses"] = responses
    codes = [400, 403, 404, 414, 422, 500]
    if op.get("security", True):
        codes.append(401)
    if method in ("post", "put", "patch", "delete"):
        codes.append(409)
    if "requestBody" in op:
        codes += [413, 415]
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorOut")}}}
    for code in sorted(codes):
        responses.setdefault(str(code), {"description": ERROR_STATUSES[code], "content": error})
    for code in ("201", "202"):
        if code in responses:
            responses[code].setdefault("headers", {})["Location"] = {
                "description": "URL of what was created, or of the job that tracks it",
                "schema": {"type": "string"}}
    names = {p.get("name") for p in op.get("parameters", []) if p.get("in") == "query"}
    if {"limit", "offset"} <= names and "200" in responses:
        responses["200"].setdefault("headers", {})[TOTAL_HEADER] = {
            "description": "Total number of items across all pages", "schema": {"type": "integer"}}


api = SlipwayAPI(
    title="Slipway API",
    version="1",
    description="Projects, feature store, model registry, deployments and monitoring.",
    auth=[TokenAuth(), BrowserSessionAuth()],
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    parser=SlipwayParser(),
)


# Every exception an operation raises is mapped once (apps.common.api_edge.error_response); ninja's own
# default handlers (registered per class) are replaced so none of them answers in another shape.
for _cls in (Exception, Http404, HttpError, ValidationError, AuthenticationError):
    api.add_exception_handler(_cls, error_response)


api.add_router("/", "apps.projects.api.router")
api.add_router("/", "apps.features.api.router")
api.add_router("/", "apps.registry.api.router")
api.add_router("/", "apps.deployments.api.router")
api.add_router("/", "apps.monitoring.api.router")
api.add_router("/", "apps.releases.api.router")
api.add_router("/", "apps.training.api.router")
api.add_router("/", "apps.readiness.api.router")

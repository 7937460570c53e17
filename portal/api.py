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

from apps.common.api_edge import MAX_URL_BYTES, error_response
from apps.common.edge import STORABLE_TEXT_PATTERN, find_bad_text, json_text_may_be_bad
from apps.common.errors import ApplicationError, InvalidInput, UnsupportedMediaType
from apps.common.schemas import INT64_MAX, TOTAL_HEADER, ErrorOut
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
    414: f"URL too long (more than {MAX_URL_BYTES:,} characters of path and query)",
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
        components = schema["components"]["schemas"]
        seen: set[str] = set()
        for path_item in schema["paths"].values():
            for method, op in path_item.items():
                _document_operation(method, op)
                for param in op.get("parameters", []):
                    # (query filters are compared in Python, so any integer is fine there)
                    _storable_text(param.get("schema", {}), components, seen, ints=param.get("in") != "query")
                for media in op.get("requestBody", {}).get("content", {}).values():
                    _storable_text(media.get("schema", {}), components, seen)
        return schema


def _storable_text(node, components: dict, seen: set[str], ints: bool = True) -> None:
    """Put the edge's rule (no NUL, no unpaired surrogate: ``apps.common.edge``) on every free-text string of
    a request schema, following references; strings with a format, an enum or their own pattern (which
    already excludes those characters) are left as they are. Integers get the 64-bit range the edge
    enforces (``ints``)."""
    if isinstance(node, list):
        for item in node:
            _storable_text(item, components, seen, ints)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            _storable_text(components.get(name), components, seen, ints)
        return
    if node.get("type") == "string" and not {"format", "enum", "const", "pattern"} & node.keys():
        node["pattern"] = STORABLE_TEXT_PATTERN
    if ints and node.get("type") == "integer":  # InSchema._storable_integer and 64-bit keys; narrower ranges are
        # stated where they apply
        node.setdefault("minimum", -INT64_MAX)
        node.setdefault("maximum", INT64_MAX)
    if node.get("type") == "object" and node.get("additionalProperties", True) is not False \
            and "propertyNames" not in node:
        node["propertyNames"] = {"pattern": STORABLE_TEXT_PATTERN}  # keys are checked too
    for key in ("properties", "patternProperties", "$defs"):
        for sub in (node.get(key) or {}).values():
            _storable_text(sub, components, seen, ints)
    for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems", "not"):
        if key in node:
            _storable_text(node[key], components, seen, ints)


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

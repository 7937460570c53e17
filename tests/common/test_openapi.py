"""The OpenAPI document is honest: one class per component name, every operation documents its error
answers with the error schema, pagination and Location headers are documented, Idempotency-Key is
documented where it is honoured (and a reused key with another body is a 409)."""

import typing

import pytest
from pydantic import BaseModel

from portal.api import api


def _operations():
    for _prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for op in path_view.operations:
                yield path, op


def _models_in(annotation, seen: set):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return
        seen.add(annotation)
        for field in annotation.model_fields.values():
            _models_in(field.annotation, seen)
        return
    for arg in typing.get_args(annotation):
        _models_in(arg, seen)


def _all_models() -> set:
    seen: set = set()
    for _path, op in _operations():
        for model in op.models:
            for field in model.model_fields.values():
                _models_in(field.annotation, seen)
        for model in op.response_models.values():
            if isinstance(model, type) and issubclass(model, BaseModel):
                for field in model.model_fields.values():
                    _models_in(field.annotation, seen)
    return seen


def test_component_names_are_unique():
    by_name: dict[str, set] = {}
    for model in _all_models():
        by_name.setdefault(model.__name__, set()).add(f"{model.__module__}.{model.__qualname__}")
    duplicates = {name: sorted(classes) for name, classes in by_name.items() if len(classes) > 1}
    assert not duplicates, f"schema classes that overwrite each other in /api/openapi.json: {duplicates}"


def test_the_collision_check_would_catch_a_duplicate():
    from ninja import Schema

    class JobOut(Schema):  # the name of apps.projects.schemas.JobOut
        x: int

    seen: set = set()
    _models_in(list[JobOut], seen)
    from apps.projects.schemas import JobOut as Real

    _models_in(Real, seen)
    assert len({m.__qualname__ for m in seen if m.__name__ == "JobOut"}) == 2


@pytest.fixture(scope="module")
def schema():
    return api.get_openapi_schema()


def test_every_operation_documents_its_errors_with_the_error_schema(schema):
    missing = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            for code in ("400", "403", "404", "422", "500"):
                ref = op["responses"].get(code, {}).get("content", {}).get("application/json", {}).get("schema", {})
                if ref.get("$ref") != "#/components/schemas/ErrorOut":
                    missing.append(f"{method.upper()} {path} {code}")
            if "requestBody" in op and not {"413", "415"} <= set(op["responses"]):
                missing.append(f"{method.upper()} {path} 413/415")
    assert not missing, missing
    assert set(schema["components"]["schemas"]["ErrorOut"]["properties"]) >= {"detail", "errors"}


def test_lists_document_pagination_and_the_total_header(schema):
    for path, item in schema["paths"].items():
        op = item.get("get")
        if op is None:
            continue
        names = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        if "limit" in names:
            assert names["limit"]["schema"]["maximum"] == 500 and names["limit"]["schema"]["minimum"] == 1, path
            assert names["offset"]["schema"]["minimum"] == 0, path
            assert "X-Total-Count" in op["responses"]["200"]["headers"], path
        resp = op["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if resp.get("type") == "array":
            assert "limit" in names, f"list without pagination: GET {path}"


def test_201_and_202_document_location(schema):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            for code in ("201", "202"):
                if code in op["responses"]:
                    assert "Location" in op["responses"][code]["headers"], f"{method} {path}"


def test_idempotency_key_is_documented_where_honoured(schema):
    honoured = {
        ("post", "/api/v1/projects/{project}/feature-views/{name}/materialize"),
        ("post", "/api/v1/projects/{project}/models/{model}/versions"),
        ("post", "/api/v1/projects/{project}/readiness/snapshots"),
    }
    for method, path in honoured:
        params = schema["paths"][path][method].get("parameters", [])
        assert any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in params), path


def test_enums_and_lengths_of_the_services_are_in_the_schema(schema):
    comps = schema["components"]["schemas"]
    assert comps["ProjectIn"]["properties"]["description"]["maxLength"] == 5000
    assert comps["ProjectIn"]["properties"]["name"]["maxLength"] == 120
    assert set(comps["MemberIn"]["properties"]["role"]["enum"]) == {"owner", "data_scientist", "reviewer",
                                                                    "manager", "analyst"}
    job = comps["JobOut"]["properties"]
    assert job["id"]["format"] == "uuid" and "cancelled" in job["status"]["enum"]


def _any_of(prop: dict) -> dict:
    return next((s for s in prop.get("anyOf", []) if s.get("type") != "null"), prop)


def test_the_services_ranges_enums_and_patterns_come_from_their_constants(schema):
    """One source of truth: the numbers and names a service enforces are the ones the schema states."""
    from apps.features.services.common import NAME_RE
    from apps.monitoring.services.common import (
        CHECK_MAX_MINUTES,
        METRICS,
        MIN_WINDOW_MINUTES,
        SNOOZE_MAX_MINUTES,
    )
    from apps.readiness.services import known_item_keys
    from apps.releases.policy import LIMITS
    from apps.training.services.retraining import POLICY_LIMITS

    comps = schema["components"]["schemas"]
    snooze = comps["SnoozeIn"]["properties"]["minutes"]
    assert (snooze["minimum"], snooze["maximum"]) == (1, SNOOZE_MAX_MINUTES)
    check = comps["DriftCheckIn"]["properties"]["minutes"]
    assert (check["minimum"], check["maximum"]) == (MIN_WINDOW_MINUTES, CHECK_MAX_MINUTES)
    alpha = _any_of(comps["PromotionPolicyIn"]["properties"]["alpha"])
    assert (alpha["minimum"], alpha["maximum"]) == LIMITS["alpha"]
    fraction = comps["RetrainingPolicyIn"]["properties"]["holdout_fraction"]
    assert (fraction["minimum"], fraction["maximum"]) == POLICY_LIMITS["holdout_fraction"]
    assert comps["EntityIn"]["properties"]["name"]["pattern"].endswith(NAME_RE.pattern[1:-1] + r"\s*$")
    metric = comps["AlertRuleIn"]["properties"]["metric"]["pattern"]
    import re

    assert all(re.match(metric, m) for m in METRICS) and re.match(metric, "drift:amount")
    assert not re.match(metric, "") and not re.match(metric, "accuracy")
    path = schema["paths"]["/api/v1/projects/{project}/readiness/answers/{item_key}"]["put"]
    item = next(p for p in path["parameters"] if p["name"] == "item_key")
    assert set(item["schema"]["enum"]) == known_item_keys()
    assert comps["RetrainingPolicyIn"]["properties"]["triggers"]["minItems"] == 1
    from apps.monitoring.services.outcomes import MAX_OUTCOMES, OUTCOME_KEYS

    outcomes = comps["OutcomesIn"]["properties"]["outcomes"]
    assert tuple(outcomes["items"]["properties"]) == OUTCOME_KEYS and outcomes["maxItems"] == MAX_OUTCOMES


def test_every_free_text_request_string_refuses_nul_in_the_schema_too(schema):
    """The edge refuses NUL in any string (apps.common.edge); the schema says so on every request string,
    in a pattern every validator can compile (no surrogates: Rust and ECMA "u" regexes refuse them)."""
    import re

    from schemathesis.core.jsonschema.patterns import enforced_pattern

    from apps.common.edge import STORABLE_TEXT_PATTERN

    comps = schema["components"]["schemas"]
    assert comps["ProjectIn"]["properties"]["description"]["pattern"] == STORABLE_TEXT_PATTERN
    assert comps["OverrideIn"]["properties"]["values"]["propertyNames"]["enum"]
    assert comps["OutcomesIn"]["properties"]["outcomes"]["items"]["properties"]["label"]["pattern"]
    path = schema["paths"]["/api/v1/projects/{project}/members/{username}"]["delete"]
    assert all(p["schema"]["pattern"] == STORABLE_TEXT_PATTERN for p in path["parameters"])
    assert not re.match(STORABLE_TEXT_PATTERN, "a\x00b") and re.match(STORABLE_TEXT_PATTERN, "naïve 😀")

    def patterns(node):
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield node["pattern"]
            for value in node.values():
                yield from patterns(value)
        elif isinstance(node, list):
            for value in node:
                yield from patterns(value)

    found = set(patterns(schema))
    assert len(found) > 5
    assert all(enforced_pattern(p) == p for p in found), [p for p in found if enforced_pattern(p) != p]


@pytest.mark.django_db
def test_idempotency_key_reused_with_another_body_is_409(project, users, api_client):
    from apps.readiness.models import ReadinessSnapshot

    client = api_client(users["owner"])
    url = "/api/v1/projects/fraud/readiness/snapshots"
    headers = {"Idempotency-Key": "snap-1"}
    first = client.post(url, {"note": "a"}, content_type="application/json", headers=headers)
    again = client.post(url, {"note": "a"}, content_type="application/json", headers=headers)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    other = client.post(url, {"note": "b"}, content_type="application/json", headers=headers)
    assert other.status_code == 409, other.content
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert ReadinessSnapshot.objects.filter(project=project).count() == 1

"""The API's contract under any input: one JSON error shape for every non-2xx answer under /api/, the
right status per error class, unstorable text refused at the edge naming the field, one pagination,
strict bodies, jobs, and no existence leaks."""

import json
import uuid

import pytest
from django.test import Client

from apps.projects.models import ApiToken, Job, JobStatus, Project

pytestmark = pytest.mark.django_db


def assert_error(resp, status: int, field: str | None = ...):
    assert resp.status_code == status, (resp.status_code, resp.content[:500])
    assert resp["Content-Type"].startswith("application/json"), resp["Content-Type"]
    body = resp.json()
    assert isinstance(body["detail"], str) and body["detail"], body
    assert isinstance(body["errors"], list), body
    for err in body["errors"]:
        assert {"field", "message"} <= set(err), err
    if field is not ...:
        assert any(e["field"] == field for e in body["errors"]), body
    return body


@pytest.fixture
def owner(project, users, api_client):
    return api_client(users["owner"])


# --- 404 / 405 / CSRF: what ninja never sees -------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_unknown_api_path_is_404_json_for_every_method(method, owner):
    resp = owner.generic(method.upper(), "/api/v1/no-such-thing", "{}", content_type="application/json")
    assert_error(resp, 404)


def test_post_to_unknown_path_without_credentials_or_csrf_is_404_json_not_csrf_page():
    client = Client(enforce_csrf_checks=True)
    assert_error(client.post("/api/v1/nothing/here", {"a": "b"}), 404)
    assert_error(client.post("/api/nothing"), 404)


def test_wrong_method_is_405_json_with_allow(owner):
    resp = owner.delete("/api/v1/projects")
    assert_error(resp, 405)
    assert "GET" in resp["Allow"]


def test_predict_with_wrong_method_is_405_json(owner):
    assert_error(owner.get("/api/v1/deployments/x/predict"), 405)


# --- 400 / 413 / 415 -----------------------------------------------------------------------------


def test_malformed_json_is_400_json(owner):
    assert_error(owner.post("/api/v1/projects", "{not json", content_type="application/json"), 400)


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_json_body_sent_with_another_content_type_is_415(ctype, owner):
    resp = owner.post("/api/v1/projects", json.dumps({"name": "Churn"}), content_type=ctype)
    assert_error(resp, 415)
    assert not Project.objects.filter(slug="churn").exists()


def test_json_body_over_request_limit_is_413_json(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    resp = owner.post("/api/v1/projects", json.dumps({"name": "Churn", "description": "x" * 2000}),
                      content_type="application/json")
    assert_error(resp, 413)
    assert not Project.objects.filter(slug="churn").exists()


def test_multipart_fields_over_request_limit_are_413_json(owner, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    resp = owner.post("/api/v1/projects/fraud/sources/s/versions",
                      {"description": "x" * 5000, "file": SimpleUploadedFile("a.csv", b"a,b\n1,2\n")})
    assert_error(resp, 413)


def test_multipart_file_named_dot_with_a_large_body_is_json(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    boundary = "XxXx"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\".\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + b"a" * 5000 + f"\r\n--{boundary}--\r\n".encode()
    resp = owner.generic("POST", "/api/v1/projects/fraud/sources/s/versions", body,
                         content_type=f"multipart/form-data; boundary={boundary}")
    assert resp.status_code in (400, 413, 422)
    assert_error(resp, resp.status_code)


# --- 401 / 403 / 404 / 409 / 422 -------------------------------------------------------------------


def test_unauthenticated_is_401_json():
    assert_error(Client().get("/api/v1/projects"), 401)


def test_role_without_permission_is_403_json(users, api_client):
    resp = api_client(users["analyst"]).post("/api/v1/projects/fraud/members",
                                             {"username": "outsider", "role": "analyst"},
                                             content_type="application/json")
    assert_error(resp, 403)


def test_conflict_is_409_json(owner):
    assert_error(owner.post("/api/v1/projects", {"name": "Fraud", "slug": "fraud"},
                            content_type="application/json"), 409, "slug")


def test_server_error_is_500_json_with_request_id_only(owner, monkeypatch):
    from apps.projects import api as projects_api

    def boom(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(projects_api, "project_list_for_user", boom)
    resp = owner.get("/api/v1/projects")
    body = assert_error(resp, 500)
    assert "secret" not in resp.content.decode() and "Traceback" not in resp.content.decode()
    assert body["request_id"] == resp["X-Request-ID"]
    uuid.UUID(body["request_id"])


# --- unstorable text at the edge ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a\u0000b", "x\ud800"])
def test_nul_or_surrogate_in_json_body_is_422_naming_the_field(bad, owner):
    body = json.dumps({"name": bad})  # json.dumps escapes both as \\uXXXX, as a client would
    assert_error(owner.post("/api/v1/projects", body, content_type="application/json"), 422, "name")
    assert_error(owner.post("/api/v1/tokens", json.dumps({"name": bad}), content_type="application/json"), 422,
                 "name")
    assert Project.objects.count() == 1 and not ApiToken.objects.filter(name__startswith="a").exists()


def test_nul_in_a_nested_key_is_422_naming_the_object(users, api_client):
    resp = api_client(users["owner"]).post("/api/v1/projects", json.dumps({"name": "ok", "x\u0000": 1}),
                                           content_type="application/json")
    assert_error(resp, 422)


def test_nul_in_path_is_422_naming_the_parameter(owner):
    assert_error(owner.get("/api/v1/projects/fr%00aud"), 422, "project")
    assert_error(owner.get("/api/v1/nothing%00here"), 422, "path")


def test_nul_in_query_is_422_naming_the_parameter(owner):
    assert_error(owner.get("/api/v1/projects?search=a%00b"), 422, "search")


def test_nul_in_multipart_field_is_422_naming_it(owner):
    from django.core.files.uploadedfile import SimpleUploadedFile

    resp = owner.post("/api/v1/projects/fraud/sources/s/versions",
                      {"description": "a\u0000b", "file": SimpleUploadedFile("a.csv", b"a,b\n1,2\n")})
    assert_error(resp, 422, "description")


def test_nul_in_a_csv_cell_of_an_upload_is_422(owner):
    from django.core.files.uploadedfile import SimpleUploadedFile

    rows = b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(3000)) + b"7,bad\x00cell\n"
    resp = owner.post("/api/v1/projects/fraud/sources/s/versions",
                      {"file": SimpleUploadedFile("a.csv", rows)})
    assert_error(resp, 422)
    assert "b" in resp.json()["detail"]


# --- strict bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ['"\\u0003"', "[]", "3", "null"])
def test_non_object_json_body_is_422(body, owner):
    assert_error(owner.post("/api/v1/projects", body, content_type="application/json"), 422, "body")


def test_unknown_field_is_422_naming_it(owner):
    resp = owner.post("/api/v1/projects", {"name": "Churn", "colour": "red"}, content_type="application/json")
    assert_error(resp, 422, "colour")
    assert not Project.objects.filter(slug="churn").exists()


def test_every_request_body_forbids_unknown_fields():
    from portal.api import api

    schema = api.get_openapi_schema()
    comps = schema["components"]["schemas"]
    loose = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                continue
            ref = content["schema"].get("$ref", "")
            name = ref.rsplit("/", 1)[-1]
            if comps.get(name, {}).get("additionalProperties") is not False:
                loose.append(f"{method.upper()} {path} ({name})")
    assert not loose, loose


# --- pagination --------------------------------------------------------------------------------------


LISTS = ["/api/v1/projects", "/api/v1/projects/fraud/members", "/api/v1/projects/fraud/audit", "/api/v1/tokens"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("query,field", [("limit=0", "limit"), ("limit=501", "limit"), ("limit=-1", "limit"),
                                         ("offset=-1", "offset"), ("offset=99999999999999999999999", "offset"),
                                         ("limit=99999999999999999999", "limit")])
def test_pagination_out_of_range_is_422(path, query, field, owner):
    assert_error(owner.get(f"{path}?{query}"), 422, field)


def test_pagination_total_is_in_x_total_count(owner, users, make_user, api_client):
    resp = owner.get("/api/v1/projects/fraud/members?limit=2&offset=1")
    assert resp.status_code == 200 and len(resp.json()) == 2
    assert resp["X-Total-Count"] == "5"


# --- jobs ---------------------------------------------------------------------------------------------


def _job(project, user, status=JobStatus.RUNNING):
    return Job.objects.create(project=project, kind="test", title="t", status=status, created_by=user)


def test_get_job_returns_the_documented_fields(project, users, owner):
    job = _job(project, users["owner"])
    resp = owner.get(f"/api/v1/jobs/{job.pk}")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["id"] == str(job.pk) and body["status"] == "running" and body["cancel_requested"] is False


def test_cancel_running_job_is_202_and_finished_job_409(project, users, owner):
    job = _job(project, users["owner"])
    resp = owner.post(f"/api/v1/jobs/{job.pk}/cancel")
    assert resp.status_code == 202, resp.content
    assert resp.json()["cancel_requested"] is True
    queued = _job(project, users["owner"], status=JobStatus.QUEUED)
    resp = owner.post(f"/api/v1/jobs/{queued.pk}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert_error(owner.post(f"/api/v1/jobs/{queued.pk}/cancel"), 409)


def test_job_of_another_project_is_the_same_404_as_a_missing_one(project, users, api_client):
    job = _job(project, users["owner"])
    outsider = api_client(users["outsider"])
    hidden = assert_error(outsider.get(f"/api/v1/jobs/{job.pk}"), 404)
    missing = assert_error(outsider.get(f"/api/v1/jobs/{uuid.uuid4()}"), 404)
    assert hidden == missing and "fraud" not in json.dumps(hidden).lower()
    assert_error(outsider.post(f"/api/v1/jobs/{job.pk}/cancel"), 404)


def test_job_id_that_is_not_a_uuid_is_422(owner):
    assert_error(owner.get("/api/v1/jobs/not-a-uuid"), 422, "job_id")


def test_location_on_201(owner):
    resp = owner.post("/api/v1/projects", {"name": "Churn"}, content_type="application/json")
    assert resp.status_code == 201 and resp["Location"] == "/api/v1/projects/churn"


def test_every_201_answer_carries_the_location_of_what_it_created(project, users, owner):
    """Entities, source versions, deployment keys, alert rules and readiness snapshots too (each points
    at the created object under its collection)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.deployments.factories import deploy, make_ready_version

    resp = owner.post("/api/v1/projects/fraud/entities", {"name": "card", "join_key": "card_id"},
                      content_type="application/json")
    assert resp.status_code == 201 and resp["Location"] == "/api/v1/projects/fraud/entities/card"
    csv = SimpleUploadedFile("tx.csv", b"card_id,ts,amount\na1,2026-01-01T00:00:00Z,3.5\n", content_type="text/csv")
    resp = owner.post("/api/v1/projects/fraud/sources/tx/versions", {"file": csv})
    assert resp.status_code == 201, resp.content
    assert resp["Location"] == f"/api/v1/projects/fraud/sources/tx/versions/{resp.json()['version']}"
    dep, _ = deploy(project=project, actor=users["owner"], version=make_ready_version(project=project,
                                                                                      actor=users["owner"]))
    resp = owner.post(f"/api/v1/projects/fraud/deployments/{dep.slug}/keys", {"name": "batch"},
                      content_type="application/json")
    assert resp.status_code == 201 and resp["Location"] == (
        f"/api/v1/projects/fraud/deployments/{dep.slug}/keys/{resp.json()['id']}")
    resp = owner.post(f"/api/v1/deployments/{dep.slug}/monitoring/rules",
                      {"name": "floor", "metric": "realized_accuracy", "comparator": "lt", "threshold": 0.6},
                      content_type="application/json")
    assert resp.status_code == 201 and resp["Location"] == (
        f"/api/v1/deployments/{dep.slug}/monitoring/rules/{resp.json()['id']}")
    resp = owner.post("/api/v1/projects/fraud/readiness/snapshots", {"note": "q4"}, content_type="application/json")
    assert resp.status_code == 201 and resp["Location"] == (
        f"/api/v1/projects/fraud/readiness/snapshots/{resp.json()['id']}")


def test_a_number_the_database_cannot_store_is_422_not_500(project, users, api_client, monkeypatch):
    from django.db import DataError

    from apps.projects import api as projects_api

    def overflow(**kwargs):
        raise DataError("integer out of range")

    monkeypatch.setattr(projects_api, "project_create", overflow)
    resp = api_client(users["owner"]).post("/api/v1/projects", {"name": "Churn"}, content_type="application/json")
    assert_error(resp, 422)


def test_an_integer_beyond_64_bits_in_a_body_is_422_naming_it(project, users, api_client):
    # any body with an integer field will do

    resp = api_client(users["owner"]).put("/api/v1/projects/fraud/promotion-policy",
                                          json.dumps({"approvals_required": 10**30}), content_type="application/json")
    assert_error(resp, 422, "approvals_required")


def test_a_url_over_8000_characters_is_414_json_for_the_api_and_414_for_pages(owner):
    """(Under gunicorn, request lines beyond its 8,190-byte cap get its own JSON 414: test_schemathesis.py.)"""
    from apps.common.api_edge import MAX_URL_BYTES

    assert MAX_URL_BYTES == 8000
    assert owner.get("/api/v1/projects?x=" + "a" * 7950).status_code == 200
    assert_error(owner.get("/api/v1/projects?search=" + "a" * 8100), 414)
    assert owner.get("/projects/?q=" + "a" * 8100).status_code == 414


@pytest.mark.parametrize("body,field", [({"archived": 0}, "archived"), ({"archived": "yes"}, "archived")])
def test_booleans_and_numbers_are_not_interchangeable(body, field, owner, project):
    assert_error(owner.patch("/api/v1/projects/fraud", body, content_type="application/json"), 422, field)
    project.refresh_from_db()
    assert project.archived_at is None


def test_a_boolean_for_a_number_is_422(owner):
    resp = owner.put("/api/v1/projects/fraud/promotion-policy", {"tolerance": False}, content_type="application/json")
    assert_error(resp, 422, "tolerance")


# --- what schemathesis --checks all found: refusals the schema now states, and the state conflicts --------


@pytest.fixture
def scorer(project, users):
    from tests.monitoring.factories import make_deployment

    return make_deployment(project, users["owner"])


def _json(client, method, url, body):
    return client.generic(method, url, json.dumps(body), content_type="application/json")


def test_acknowledging_an_alert_that_is_not_open_is_a_409_conflict(scorer, owner):
    from django.utils import timezone

    from apps.monitoring.models import Alert, AlertRule

    rule = AlertRule.objects.create(deployment=scorer, name="r", metric="share_drifted", comparator="gt",
                                    threshold=0.3)
    alert = Alert.objects.create(rule=rule, deployment=scorer, severity="warning", message="m",
                                 opened_at=timezone.now())
    assert owner.post(f"/api/v1/alerts/{alert.pk}/acknowledge").status_code == 200
    body = assert_error(owner.post(f"/api/v1/alerts/{alert.pk}/acknowledge"), 409)
    assert "acknowledged" in body["detail"]
    assert_error(_json(owner, "POST", f"/api/v1/alerts/{alert.pk}/snooze", {"minutes": 0}), 422, "minutes")
    assert_error(_json(owner, "POST", f"/api/v1/alerts/{alert.pk}/snooze", {"minutes": 14 * 24 * 60 + 1}), 422,
                 "minutes")


@pytest.mark.parametrize("trigger", [{"kind": "alert_rule", "rule_id": {}}, {"kind": "alert_rule", "rule_id": True},
                                     {"kind": "alert_rule", "rule_id": 2**70},
                                     {"kind": "metric", "metric": "share_drifted", "comparator": "gt",
                                      "threshold": False}])
def test_a_malformed_retraining_trigger_is_422_not_500(trigger, scorer, owner):
    resp = _json(owner, "PUT", f"/api/v1/deployments/{scorer.slug}/retraining-policy", {"triggers": [trigger]})
    assert_error(resp, 422, "triggers")


def test_outcome_items_are_strict_like_every_body(scorer, owner):
    rid = str(uuid.uuid4())
    url = f"/api/v1/deployments/{scorer.slug}/outcomes"
    body = assert_error(_json(owner, "POST", url, {"outcomes": [{"request_id": rid, "label": 1, "extra": 1}]}), 422,
                        "outcomes.0.extra")
    assert body["errors"][0]["message"] == "unknown field"
    assert_error(_json(owner, "POST", url, {"outcomes": [{"request_id": rid, "label": 1, "observed_at": {}}]}), 422,
                 "outcomes.0.observed_at")


def test_numbers_are_not_dates_and_booleans_not_thresholds(scorer, owner, project):
    assert_error(_json(owner, "PUT", f"/api/v1/deployments/{scorer.slug}/monitoring/settings",
                       {"thresholds": {"alpha": False}}), 422)
    assert_error(_json(owner, "PUT", f"/api/v1/deployments/{scorer.slug}/monitoring/settings",
                       {"window_minutes": 2**40}), 422, "window_minutes")
    assert_error(_json(owner, "POST", f"/api/v1/projects/{project.slug}/feature-sets/x/online",
                       {"entity_keys": ["a"], "as_of": 0}), 422, "as_of")

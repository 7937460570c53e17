"""Outcomes API and alert API through the mounted NinjaAPI (status codes and JSON error bodies)."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from apps.monitoring.models import Outcome

from .factories import log_predictions, make_deployment

pytestmark = pytest.mark.django_db
URL = "/api/v1/deployments/{}/outcomes"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
def deployment(project, users):
    return make_deployment(project, users["owner"])


def _post(client, slug, body):
    return client.post(URL.format(slug), data=json.dumps(body), content_type="application/json")


def test_outcomes_wrong_types_are_422_with_fields_and_nothing_stored(deployment, users, api_client):
    ids, _ = log_predictions(deployment, n=3, start=T0)
    client = api_client(users["owner"])
    r = _post(client, deployment.slug, {"outcomes": [{"request_id": str(ids[0]), "label": 1},
                                                     {"request_id": 12, "label": 1},
                                                     {"request_id": "not-a-uuid", "label": {"x": 1}}, "oops"]})
    assert r.status_code == 422
    fields = [e["field"] for e in r.json()["errors"]]
    assert fields == ["outcomes.1.request_id", "outcomes.2.request_id", "outcomes.2.label", "outcomes.3"]
    assert not Outcome.objects.exists()
    assert _post(client, deployment.slug, {"outcomes": "nope"}).status_code == 422
    assert _post(client, deployment.slug, {"nothing": []}).status_code == 422


def test_outcomes_unknown_ids_and_duplicates(deployment, users, api_client):
    ids, _ = log_predictions(deployment, n=3, start=T0)
    client = api_client(users["data_scientist"])
    unknown = str(uuid.uuid4())
    body = {"outcomes": [{"request_id": str(ids[0]), "label": 1}, {"request_id": str(ids[0]), "label": 1},
                         {"request_id": str(ids[1]), "label": 0}, {"request_id": unknown, "label": 0}]}
    r = _post(client, deployment.slug, body)
    assert r.status_code == 202, r.content  # an id not in the log (yet) is held pending, not "unknown"
    data = r.json()
    assert (data["status"], data["created"], data["unchanged"]) == ("pending", 2, 1)
    assert (data["pending"], data["pending_request_ids"], data["unknown_request_ids"]) == (1, [unknown], [])
    r = _post(client, deployment.slug, {"outcomes": [{"request_id": str(ids[1]), "label": 1}]})
    assert r.json()["conflicts"] == [{"request_id": str(ids[1]), "stored": 0, "received": 1}]


def test_outcomes_permissions_and_unknown_deployment(deployment, users, api_client):
    body = {"outcomes": []}
    assert _post(api_client(users["reviewer"]), deployment.slug, body).status_code == 403
    assert _post(api_client(users["outsider"]), deployment.slug, body).status_code in (403, 404)
    assert _post(api_client(users["owner"]), "nope", body).status_code == 404
    assert _post(api_client(None), deployment.slug, body).status_code == 401


def test_outcomes_over_the_limit_is_413_and_nothing_stored(deployment, users, api_client):
    items = [{"request_id": str(uuid.uuid4()), "label": 1} for _ in range(100_001)]
    r = _post(api_client(users["owner"]), deployment.slug, {"outcomes": items})
    assert r.status_code == 413
    assert not Outcome.objects.exists()


def test_settings_and_overrides_api(deployment, users, api_client):
    client = api_client(users["analyst"])
    base = f"/api/v1/deployments/{deployment.slug}/monitoring"
    r = client.put(f"{base}/settings", data=json.dumps({"window_minutes": 5}), content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "window_minutes"
    r = client.put(f"{base}/settings", data=json.dumps({"window_minutes": 30, "thresholds": {"alpha": 0.01}}),
                   content_type="application/json")
    assert r.status_code == 200 and r.json()["effective_thresholds"]["alpha"] == 0.01
    assert "decision_threshold" not in r.json()  # removed: estimates use the model's own logged decisions
    r = client.put(f"{base}/settings", data=json.dumps({"decision_threshold": 0.3}), content_type="application/json")
    assert r.status_code == 422 and "decision_threshold" in json.dumps(r.json()), r.content
    r = client.post(f"{base}/overrides", data=json.dumps({"feature": "amount", "values": {"wasserstein": 0.3},
                                                          "reason": ""}), content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    r = client.post(f"{base}/overrides", data=json.dumps({"feature": "amount", "values": {"wasserstein": 0.3},
                                                          "reason": "seasonal"}), content_type="application/json")
    assert r.json()["overrides"] == [{"feature": "amount", "values": {"wasserstein": 0.3}, "reason": "seasonal",
                                      "created_by": "analyst"}]
    assert api_client(users["reviewer"]).put(f"{base}/settings", data="{}",
                                             content_type="application/json").status_code == 403


def test_outcomes_are_checked_against_the_model_and_bad_items_listed_not_stored(deployment, users, api_client):
    ids, _ = log_predictions(deployment, n=8, start=T0)
    client = api_client(users["owner"])
    body = {"outcomes": [
        {"request_id": str(ids[0]), "label": 1},                      # ok
        {"request_id": str(ids[1]), "label": "yes"},                  # not a class
        {"request_id": str(ids[2]), "label": 7},                      # not a class
        {"request_id": str(ids[3]), "label": 1.5},                    # not a class
        {"request_id": str(ids[4]), "label": "x" * 100_000},          # not a class (and not stored)
        {"request_id": str(ids[5]), "label": True},                   # bool is not the int class 1
        {"request_id": str(ids[6]), "label": 0, "observed_at": "not-a-date"},
        {"request_id": str(ids[7]), "label": 0, "observed_at": "2026-11-25T12:00:00Z"},  # ok
    ]}
    r = client.post(URL.format(deployment.slug), data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200, r.content
    out = r.json()
    assert out["created"] == 2 and out["received"] == 8
    by_index = {item["index"]: item for item in out["invalid"]}
    assert sorted(by_index) == [1, 2, 3, 4, 5, 6]
    assert by_index[1]["field"] == "outcomes.1.label"
    assert by_index[1]["message"] == "label the string 'yes' is not one of the model's classes (0, 1)"
    assert "int 7 is not one of the model's classes" in by_index[2]["message"]
    assert "float 1.5 is not one of" in by_index[3]["message"] and len(by_index[4]["message"]) < 200
    assert "a boolean is not one of" in by_index[5]["message"]
    assert by_index[6]["field"] == "outcomes.6.observed_at" and "not an ISO 8601 date-time" in by_index[6]["message"]
    assert sorted(str(o) for o in Outcome.objects.values_list("request_id", flat=True)) == sorted([str(ids[0]),
                                                                                                  str(ids[7])])
    late = Outcome.objects.get(request_id=ids[7])
    assert late.label_latency_s == (datetime(2026, 11, 25, 12, 0, tzinfo=UTC) - late.predicted_at).total_seconds()


def test_regression_outcomes_must_be_finite_numbers(deployment, users, api_client):
    from apps.registry.models import ModelVersion

    deployment.registered_model.task = "regression"
    deployment.registered_model.save()
    ModelVersion.objects.filter(pk=deployment.production_version_id).update(classes=None)
    ids, _ = log_predictions(deployment, n=4, start=T0)
    client = api_client(users["owner"])
    items = [f'{{"request_id": "{ids[0]}", "label": 12.5}}', f'{{"request_id": "{ids[1]}", "label": NaN}}',
             f'{{"request_id": "{ids[2]}", "label": "12.5"}}',
             f'{{"request_id": "{ids[3]}", "label": 3, "observed_at": "2999-01-01"}}']
    raw = '{"outcomes": [' + ", ".join(items) + "]}"  # NaN is not JSON: written by hand, as a client might
    r = client.post(URL.format(deployment.slug), data=raw, content_type="application/json")
    assert r.status_code == 200, r.content
    invalid = {i["index"]: i["message"] for i in r.json()["invalid"]}
    assert invalid == {1: "label must be a finite number",
                       2: "label must be a number for a regression model, got the string '12.5'",
                       3: "observed_at 2999-01-01 is in the future"}
    assert list(Outcome.objects.values_list("label", flat=True)) == [12.5]


def test_outcomes_not_logged_yet_are_checked_against_the_production_version(deployment, users, api_client):
    from apps.monitoring.models import PendingOutcome

    client = api_client(users["owner"])
    early_ok, early_bad = str(uuid.uuid4()), str(uuid.uuid4())
    r = _post(client, deployment.slug, {"outcomes": [{"request_id": early_ok, "label": 1},
                                                     {"request_id": early_bad, "label": "yes"}]})
    assert r.status_code == 202, r.content
    assert r.json()["pending_request_ids"] == [early_ok]
    assert [(i["index"], i["field"]) for i in r.json()["invalid"]] == [(1, "outcomes.1.label")]
    assert [str(p) for p in PendingOutcome.objects.values_list("request_id", flat=True)] == [early_ok]

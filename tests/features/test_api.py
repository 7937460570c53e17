"""The feature store API through the mounted NinjaAPI: status codes and {"detail": ...} bodies."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.features import services
from tests.features.factories import csv_bytes, feature_rows, labels_frame, make_feature_store

pytestmark = pytest.mark.django_db
BASE = "/api/v1/projects/fraud"


@pytest.fixture
def store(project, users):
    return make_feature_store(project=project, actor=users["owner"], ttl=timedelta(days=10000))


def test_define_entity_source_view_and_set_through_the_api(project, users, api_client):
    c = api_client(users["data_scientist"])
    r = c.post(f"{BASE}/entities", {"name": "customer", "join_key": "customer_id"}, content_type="application/json")
    assert r.status_code == 201, r.content
    f = SimpleUploadedFile("tx.csv", csv_bytes(feature_rows(3, 5)), content_type="text/csv")
    r = c.post(f"{BASE}/sources/transactions/versions", {"file": f})
    assert r.status_code == 201, r.content
    assert r.json()["row_count"] == 15 and r.json()["version"] == 1
    view = {"name": "stats", "entity": "customer", "source": "transactions", "timestamp_column": "event_timestamp",
            "features": [{"name": "amount", "description": "spent"}, "n_tx"], "availability_lag": "1h",
            "ttl": "1d", "online": True, "tags": ["Payments"]}
    r = c.post(f"{BASE}/feature-views", view, content_type="application/json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["availability_lag_seconds"] == 3600 and body["ttl_seconds"] == 86400 and body["tags"] == ["payments"]
    assert body["owner"] == "data_scientist"
    r = c.post(f"{BASE}/feature-sets", {"name": "inputs", "features": ["stats:amount", "stats:n_tx"]},
               content_type="application/json")
    assert r.status_code == 201 and r.json()["online_servable"] is True
    r = c.get(f"{BASE}/feature-views", {"mode": "online", "search": "amount"})
    assert [v["name"] for v in r.json()] == ["stats"]


def test_errors_are_json_with_field(store, users, api_client):
    c = api_client(users["data_scientist"])
    f = SimpleUploadedFile("empty.csv", b"")
    r = c.post(f"{BASE}/sources/transactions/versions", {"file": f})
    assert r.status_code == 422 and "empty" in r.json()["detail"] and r.json()["errors"][0]["field"] == "file"
    r = c.post(f"{BASE}/feature-sets", {"name": "x", "features": ["customer_stats:nope"]}, content_type="application/json")
    assert r.status_code == 422 and "nope" in r.json()["detail"]
    r = c.post(f"{BASE}/feature-sets", {"name": "fraud-inputs", "features": ["customer_stats:amount"]},
               content_type="application/json")
    assert r.status_code == 409
    assert api_client(users["analyst"]).post(f"{BASE}/entities", {"name": "x", "join_key": "x"},
                                             content_type="application/json").status_code == 403
    assert api_client(users["outsider"]).get(f"{BASE}/feature-views").status_code == 404
    assert api_client().get(f"{BASE}/feature-views").status_code == 401


def test_online_endpoint_returns_values_event_times_and_flags(store, users, api_client):
    services.feature_view_materialize(view=store.view, as_of=store.end)
    r = api_client(users["analyst"]).post(f"{BASE}/feature-sets/fraud-inputs/online",
                                          {"entity_keys": ["c1", "ghost"]}, content_type="application/json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["features"] == ["amount", "n_tx"]
    assert body["results"][0]["values"] == {"amount": 123.0, "n_tx": 23}
    assert body["results"][0]["event_times"]["amount"].startswith("2024-01-01T23:00:00")
    assert body["results"][1]["status"] == {"amount": "missing", "n_tx": "missing"}
    r = api_client(users["analyst"]).post(f"{BASE}/feature-sets/fraud-inputs/online", {"entity_keys": []},
                                          content_type="application/json")
    assert r.status_code == 422


def test_training_set_api_queues_a_build_and_refuses_bad_labels(store, users, api_client):
    c = api_client(users["data_scientist"])
    bad = SimpleUploadedFile("labels.csv", b"customer_id,y\nc1,1\n")
    r = c.post(f"{BASE}/training-sets", {"labels": bad, "name": "ts", "feature_set": "fraud-inputs"})
    assert r.status_code == 422 and "'event_timestamp'" in r.json()["detail"]
    good = SimpleUploadedFile("labels.csv", csv_bytes(labels_frame(store)))
    r = c.post(f"{BASE}/training-sets", {"labels": good, "name": "ts", "feature_set": "fraud-inputs"})
    assert r.status_code == 202 and r.json()["status"] == "queued" and r.json()["download_url"] is None
    assert c.get(f"{BASE}/training-sets/ts/download").status_code == 404


def test_patch_of_used_view_makes_version_2(store, users, api_client):
    r = api_client(users["owner"]).patch(f"{BASE}/feature-views/customer_stats", {"availability_lag": "2h"},
                                         content_type="application/json")
    assert r.status_code == 200 and r.json()["version"] == 2
    assert api_client(users["owner"]).get(f"{BASE}/feature-views/customer_stats?version=1").json()["version"] == 1


def test_lists_are_paginated_and_materialize_is_idempotent(store, users, api_client):
    c = api_client(users["owner"])
    assert len(c.get(f"{BASE}/feature-views", {"limit": 1}).json()) == 1
    assert c.get(f"{BASE}/feature-views", {"offset": 5}).json() == []
    r1 = c.post(f"{BASE}/feature-views/customer_stats/materialize", headers={"Idempotency-Key": "abc"})
    r2 = c.post(f"{BASE}/feature-views/customer_stats/materialize", headers={"Idempotency-Key": "abc"})
    assert r1.status_code == r2.status_code == 202 and r1.json()["job_id"] == r2.json()["job_id"]

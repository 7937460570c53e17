"""The feature store API through the mounted NinjaAPI: status codes and {"detail": ...} bodies."""

import time
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


def test_online_endpoint_access_rules_match_the_rest_of_the_api(store, users, api_client, logged_in_client,
                                                                settings):
    """The lookup reads project, role and set in one query; the answers stay those of every endpoint."""
    from django.contrib.auth import get_user_model

    from apps.projects.models import ApiToken, Membership

    services.feature_view_materialize(view=store.view, as_of=store.end)
    url, body = f"{BASE}/feature-sets/fraud-inputs/online", {"entity_keys": ["c1"]}
    r = api_client(users["outsider"]).post(url, body, content_type="application/json")
    assert r.status_code == 404 and r.json()["detail"] == "Project 'fraud' not found"
    r = api_client(users["analyst"]).post("/api/v1/projects/nope/feature-sets/fraud-inputs/online", body,
                                          content_type="application/json")
    assert r.status_code == 404
    r = api_client(users["analyst"]).post(f"{BASE}/feature-sets/nope/online", body, content_type="application/json")
    assert r.status_code == 404 and r.json()["detail"] == "No feature set 'nope'"
    staff = get_user_model().objects.create_user("staffer", password="x", is_staff=True)
    r = api_client(staff).post(url, body, content_type="application/json")
    assert r.status_code == 200 and r.json()["results"][0]["values"]["amount"] == 123.0
    # Revoked token, deactivated user, removed member: refused once the hot-path cache entry (1 s) is gone.
    settings.API_HOT_PATH_CACHE_TTL = 0.5
    analyst_client = api_client(users["analyst"])
    assert analyst_client.post(url, body, content_type="application/json").status_code == 200
    ApiToken.objects.filter(user=users["analyst"]).update(revoked_at=store.end)
    ds_client = api_client(users["data_scientist"])
    assert ds_client.post(url, body, content_type="application/json").status_code == 200
    get_user_model().objects.filter(pk=users["data_scientist"].pk).update(is_active=False)
    mgr_client = api_client(users["manager"])
    assert mgr_client.post(url, body, content_type="application/json").status_code == 200
    Membership.objects.filter(user=users["manager"]).delete()
    assert analyst_client.post(url, body, content_type="application/json").status_code == 200  # within the TTL
    time.sleep(0.6)
    assert analyst_client.post(url, body, content_type="application/json").status_code == 401
    assert ds_client.post(url, body, content_type="application/json").status_code == 401
    assert mgr_client.post(url, body, content_type="application/json").status_code == 404
    # Every other endpoint decides at once, whatever the hot-path cache holds.
    assert analyst_client.get(f"{BASE}/feature-views").status_code == 401
    settings.API_HOT_PATH_CACHE_TTL = 0  # off: the lookup decides at once too
    assert api_client(users["reviewer"]).post(url, body, content_type="application/json").status_code == 200
    Membership.objects.filter(user=users["reviewer"]).delete()
    r = api_client(users["reviewer"]).post(url, body, content_type="application/json")
    assert r.status_code == 404
    # The browser session (CSRF-checked) still works for a member.
    r = logged_in_client(users["owner"]).post(url, body, content_type="application/json")
    assert r.status_code == 200


def test_token_authentication_loads_a_partial_user_that_never_overwrites_on_save(users):
    from django.contrib.auth import get_user_model

    from apps.projects.services import api_token_authenticate
    from tests.conftest import _token_for

    u = users["analyst"]
    get_user_model().objects.filter(pk=u.pk).update(email="a@example.com", first_name="Ana")
    user = api_token_authenticate(plaintext=_token_for(u))
    assert user.pk == u.pk and user.is_active and not user.is_staff and user.email == "a@example.com"
    user.last_name = "Lyst"
    user.save()  # only loaded columns are written: the password hash stays
    fresh = get_user_model().objects.get(pk=u.pk)
    assert fresh.password == u.password and fresh.last_name == "Lyst" and fresh.check_password is not None
    assert user.date_joined == fresh.date_joined  # a deferred column loads on access


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

"""Retraining policy API and pages (status codes, errors, fragments)."""

import pytest

from apps.training.models import PolicyFiring
from tests.training.retraining_factories import accuracy_rule, degrading_world, log_traffic, post_outcomes

pytestmark = pytest.mark.django_db

API = "/api/v1/deployments/fraud-live/retraining-policy"
PAGE = "/projects/fraud/monitoring/fraud-live/retraining/"


@pytest.fixture
def world(project, users):
    w = degrading_world(project=project, owner=users["owner"])
    log_traffic(w, first_hour=1, last_hour=12)
    return w


def test_retraining_policy_api(world, users, api_client):
    rule = accuracy_rule(world, users["analyst"])
    owner = api_client(users["owner"])
    assert owner.get(API).status_code == 404
    body = {"triggers": [{"kind": "alert_rule", "rule_id": rule.pk}], "min_new_labels": 100, "cooldown_minutes": 30}
    r = owner.put(API, body, content_type="application/json")
    assert r.status_code == 200, r.content
    assert r.json()["min_new_labels"] == 100 and r.json()["new_labels"] == 0
    assert "only 0 new labelled row(s)" in r.json()["blocked_by"]
    bad = owner.put(API, {"triggers": [{"kind": "metric", "metric": "nope", "comparator": "lt", "threshold": 1}]},
                    content_type="application/json")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "triggers"
    assert api_client(users["analyst"]).put(API, body, content_type="application/json").status_code == 403
    assert api_client(users["analyst"]).get(API).status_code == 200
    r = owner.post(API + "/retrain", {"reason": "try"}, content_type="application/json")
    assert r.status_code == 202 and r.json()["status"] == "skipped" and "only 0 new" in r.json()["outcome"]
    post_outcomes(world, users["analyst"])
    r = owner.post(API + "/retrain", {}, content_type="application/json")
    assert r.status_code == 202 and r.json()["status"] == "training" and r.json()["training_job_id"]
    firings = owner.get(API + "/firings").json()
    assert [f["status"] for f in firings] == ["training", "skipped"]
    assert owner.get(f"{API}/firings/{firings[0]['id']}").json()["steps"][0]["step"] == "fire"
    assert api_client(users["outsider"]).get(API).status_code == 404


def test_retraining_pages(world, users, logged_in_client):
    rule = accuracy_rule(world, users["analyst"])
    owner = logged_in_client(users["owner"])
    page = owner.get(PAGE)
    assert page.status_code == 200 and "Set up a policy" in page.content.decode()
    r = owner.post(PAGE + "save/", {"cooldown_minutes": 60, "max_firings": 2, "max_firings_period_hours": 24,
                                    "min_new_labels": 100, "training_window_days": 30, "holdout_fraction": 0.2})
    assert r.status_code == 422 and "Add at least one trigger" in r.content.decode()
    r = owner.post(PAGE + "save/", {"enabled": "on", "alert_rules": [str(rule.pk)], "cooldown_minutes": 60,
                                    "max_firings": 2, "max_firings_period_hours": 24, "min_new_labels": 100,
                                    "training_window_days": 30, "holdout_fraction": 0.2,
                                    "metric_1": "drift:n_tx", "comparator_1": "gt", "threshold_1": 0.2,
                                    "windows_1": 2})
    assert r.status_code == 302
    page = owner.get(PAGE).content.decode()
    assert "accuracy below 0.8" in page and "drift:n_tx" in page and "only 0 new labelled" in page
    post_outcomes(world, users["analyst"])
    assert owner.post(PAGE + "retrain/", {"reason": "fresh labels"}).status_code == 302
    firing = PolicyFiring.objects.get()
    assert firing.status == "training"
    frag = owner.get(PAGE, headers={"HX-Request": "true", "HX-Target": "retraining-history"})
    assert frag.status_code == 200 and "Training job #" in frag.content.decode()  # still polling
    PolicyFiring.objects.filter(pk=firing.pk).update(status="failed")
    assert owner.get(PAGE, headers={"HX-Request": "true", "HX-Target": "retraining-history"}).status_code == 286
    analyst = logged_in_client(users["analyst"])
    assert analyst.get(PAGE).status_code == 200 and "id=\"retrain-now\"" not in analyst.get(PAGE).content.decode()
    assert analyst.post(PAGE + "retrain/").status_code == 403
    assert analyst.post(PAGE + "save/", {}).status_code == 403
    assert "fraud-live" in owner.get("/projects/fraud/retraining/").content.decode()

"""The monitoring configuration page: alert rules (create, edit, mute), settings and per-feature thresholds,
refused by the same service rules as the API, with the message beside the field and nothing written."""

import pytest

from apps.monitoring.models import AlertRule, MonitorSettings, ThresholdOverride
from apps.projects.models import AuditEvent
from tests.monitoring.factories import make_deployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def dep(project, users):
    return make_deployment(project, users["owner"])


def _url(project, dep, tail=""):
    return f"/projects/{project.slug}/monitoring/{dep.slug}/configure/{tail}"


RULE = {"name": "amount drift", "metric": "drift:amount", "comparator": "gte", "threshold": "0.2",
        "consecutive": "2", "severity": "critical", "cooldown_minutes": "60", "emails": "", "webhook_url": "",
        "webhook_secret": ""}


def test_page_lists_rules_and_forms_for_an_analyst(logged_in_client, project, users, dep):
    resp = logged_in_client(users["analyst"]).get(_url(project, dep))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'id="alert-rules"' in html and "Create rule" in html and "Save settings" in html
    assert 'value="drift:amount"' in html  # metrics offered include every input's drift


def test_manager_reads_but_cannot_change(logged_in_client, project, users, dep):
    client = logged_in_client(users["manager"])
    html = client.get(_url(project, dep)).content.decode()
    assert "Create rule" not in html and "may read this configuration" in html
    assert client.post(_url(project, dep, "rules/"), RULE).status_code == 403
    assert not AlertRule.objects.exists()


def test_rule_refused_like_the_api_then_created_edited_muted(logged_in_client, project, users, dep):
    client = logged_in_client(users["analyst"])
    # a webhook without a signing secret: the service's own message, beside the webhook field, nothing stored
    resp = client.post(_url(project, dep, "rules/"), {**RULE, "channels": ["webhook"],
                                                     "webhook_url": "https://hooks.example/x"})
    assert resp.status_code == 422
    html = resp.content.decode()
    assert 'id="rule_webhook_url_errors"' in html and "A webhook needs a URL and a signing secret" in html
    assert not AlertRule.objects.exists()

    resp = client.post(_url(project, dep, "rules/"), {**RULE, "channels": ["email"], "emails": "oncall@example.com"})
    assert resp.status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.metric, rule.threshold, rule.consecutive, rule.emails) == ("drift:amount", 0.2, 2, ["oncall@example.com"])

    edit = client.get(_url(project, dep) + f"?edit={rule.pk}").content.decode()
    assert 'id="edit-rule"' in edit and 'value="amount drift"' in edit
    resp = client.post(_url(project, dep, f"rules/{rule.pk}/"), {**RULE, "threshold": "0.3", "channels": ["email"],
                                                                "emails": "oncall@example.com, ana@example.com"})
    assert resp.status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == 0.3 and rule.emails == ["oncall@example.com", "ana@example.com"]
    bad = client.post(_url(project, dep, f"rules/{rule.pk}/"), {**RULE, "metric": "drift:amount", "consecutive": "0"})
    assert bad.status_code == 422 and rule.consecutive == 2

    assert client.post(_url(project, dep, f"rules/{rule.pk}/mute/"), {"enabled": "0"}).status_code == 302
    rule.refresh_from_db()
    assert rule.enabled is False
    assert 'data-enabled="0"' in client.get(_url(project, dep)).content.decode()
    client.post(_url(project, dep, f"rules/{rule.pk}/mute/"), {"enabled": "1"})
    rule.refresh_from_db()
    assert rule.enabled is True
    verbs = set(AuditEvent.objects.values_list("verb", flat=True))
    assert {"monitoring.alert_rule_create", "monitoring.alert_rule_update", "monitoring.alert_rule_mute",
            "monitoring.alert_rule_unmute"} <= verbs


def test_settings_refused_like_the_api_then_saved(logged_in_client, project, users, dep):
    client = logged_in_client(users["analyst"])
    form = {"window_kind": "count", "window_count": "50", "window_minutes": "60", "schedule_enabled": "on"}
    resp = client.post(_url(project, dep, "settings/"), form)
    assert resp.status_code == 422
    assert "Count windows hold at least 100 predictions" in resp.content.decode()
    assert 'id="settings_window_count_errors"' in resp.content.decode()
    assert MonitorSettings.objects.get(deployment=dep).window_count != 50

    resp = client.post(_url(project, dep, "settings/"), {**form, "window_count": "250", "t_alpha": "0.01"})
    assert resp.status_code == 302
    ms = MonitorSettings.objects.get(deployment=dep)
    assert (ms.window_kind, ms.window_count, ms.thresholds) == ("count", 250, {"alpha": 0.01})


def test_override_needs_values_and_reason(logged_in_client, project, users, dep):
    client = logged_in_client(users["analyst"])
    resp = client.post(_url(project, dep, "overrides/"), {"feature": "amount", "reason": "seasonal"})
    assert resp.status_code == 422 and "Override alpha, wasserstein, js or psi" in resp.content.decode()
    resp = client.post(_url(project, dep, "overrides/"), {"feature": "amount", "reason": " ", "o_wasserstein": "0.3"})
    assert resp.status_code == 422 and not ThresholdOverride.objects.exists()
    resp = client.post(_url(project, dep, "overrides/"), {"feature": "amount", "reason": "seasonal promotion",
                                                          "o_wasserstein": "0.3"})
    assert resp.status_code == 302
    assert ThresholdOverride.objects.get().values == {"wasserstein": 0.3}

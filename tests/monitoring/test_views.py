"""Pages (full page vs htmx fragment), permissions, and the Prometheus gauges."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.monitoring import services
from apps.monitoring.models import Alert, AlertStatus

from .factories import log_predictions, make_deployment

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
def monitored(project, users):
    dep = make_deployment(project, users["owner"])
    ms = services.monitor_settings_for(dep)
    ms.window_minutes, ms.last_window_end = 15, T0
    ms.save()
    services.alert_rule_create(deployment=dep, actor=users["owner"], name="drift", metric="share_drifted",
                               comparator="gt", threshold=0.2)
    log_predictions(dep, n=1000, start=T0, seconds=890, shift=0.6)
    services.monitoring_tick(now=T0 + timedelta(minutes=16))
    return dep


def test_overview_and_dashboard_pages(monitored, project, users, logged_in_client):
    client = logged_in_client(users["analyst"])
    r = client.get(f"/projects/{project.slug}/monitoring/")
    assert r.status_code == 200 and b"health-table" in r.content and b"attention" in r.content
    r = client.get(f"/projects/{project.slug}/monitoring/{monitored.slug}/")
    assert r.status_code == 200 and b"fig-heatmap" in r.content and b"<html" in r.content
    r = client.get(f"/projects/{project.slug}/monitoring/{monitored.slug}/?windows=12",
                   headers={"HX-Request": "true", "HX-Target": "dashboard-body"})
    assert r.status_code == 200 and b"<html" not in r.content and b'data-windows="12"' in r.content
    r = client.get(f"/projects/{project.slug}/monitoring/{monitored.slug}/features/amount/",
                   headers={"HX-Request": "true"})
    assert r.status_code == 200 and b"fig-feature-hist" in r.content


def test_outsider_gets_404_and_reviewer_cannot_acknowledge(monitored, project, users, logged_in_client):
    assert logged_in_client(users["outsider"]).get(f"/projects/{project.slug}/monitoring/").status_code in (403, 404)
    alert = Alert.objects.get()
    r = logged_in_client(users["reviewer"]).post(f"/projects/{project.slug}/monitoring/alerts/{alert.pk}/acknowledge/")
    assert r.status_code == 403
    r = logged_in_client(users["analyst"]).post(f"/projects/{project.slug}/monitoring/alerts/{alert.pk}/snooze/",
                                                {"minutes": "60"}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    alert.refresh_from_db()
    assert alert.snoozed_until is not None and alert.status == AlertStatus.OPEN


def test_prometheus_gauges(monitored, client):
    from prometheus_client import REGISTRY, generate_latest

    text = generate_latest(REGISTRY).decode()
    assert f'slipway_drift_share{{deployment="{monitored.slug}"}}' in text
    assert f'slipway_alerts_open{{deployment="{monitored.slug}",severity="warning"}} 1.0' in text
    assert f'slipway_drift_feature_score{{deployment="{monitored.slug}",feature="amount"}}' in text

"""Browser: an analyst opens the drift dashboard, changes the window, opens a feature's histogram and
acknowledges an alert."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.monitoring import services
from apps.monitoring.models import Alert, AlertStatus
from tests.monitoring.factories import log_predictions, make_deployment

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.fixture
def monitored(project, users):
    dep = make_deployment(project, users["owner"])
    ms = services.monitor_settings_for(dep)
    ms.window_minutes, ms.last_window_end = 15, T0
    ms.save()
    services.alert_rule_create(deployment=dep, actor=users["owner"], name="amount drift", metric="drift:amount",
                               comparator="gte", threshold=0.2, severity="critical")
    for i, shift in enumerate([0.0, 0.0, 0.3, 0.6, 0.8]):
        log_predictions(dep, n=800, start=T0 + timedelta(minutes=15 * i), seconds=890, shift=shift, seed=i)
    services.monitoring_tick(now=T0 + timedelta(minutes=76))
    assert Alert.objects.filter(status=AlertStatus.OPEN).count() == 1
    return dep


def test_analyst_uses_the_drift_dashboard(page, live_server, login, shot, project, users, monitored):
    login(page, users["analyst"])
    page.goto(f"{live_server.url}/projects/{project.slug}/monitoring/")
    assert page.locator("#health-table").get_by_text("critical").is_visible()
    shot(page, "monitoring-overview")
    page.click(f"#health-table a:has-text('{monitored.name}')")
    page.wait_for_selector("[data-figure='fig-heatmap'] .main-svg")
    assert page.locator("#dashboard-body").get_attribute("data-windows") == "24"
    # the estimate comes with its band (sampling error), drawn with the realized figures
    page.wait_for_selector("[data-figure='fig-perf'] .main-svg")
    assert "band" in page.locator("#dashboard-body .grid").first.inner_text()

    page.select_option("#window-select", "12")
    page.wait_for_selector("#dashboard-body[data-windows='12'] [data-figure='fig-heatmap'] .main-svg")

    page.click(".feature-picker button[data-feature='amount']")
    page.wait_for_selector("#feature-panel[data-feature='amount'] [data-figure='fig-feature-hist'] .main-svg")
    assert page.locator("#feature-panel").get_by_text("drifted").first.is_visible()
    shot(page, "monitoring-dashboard")

    row = page.locator("tr[id^='alert-']").first
    row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector("tr[id^='alert-'][data-status='acknowledged']")
    assert "by analyst" in page.locator("tr[id^='alert-']").first.inner_text()
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by == users["analyst"]
    shot(page, "monitoring-alert-acknowledged")

"""A new deployment's first hour: count windows by default, the CBPE calibration fitted from the version's
labelled holdout when it goes live (a real worker runs the task the deployment sends), and the first
predictions shown as a partial window at the next tick — not after the log settles or an hour closes."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.monitoring import services
from apps.monitoring.models import MonitoringWindow, MonitorSettings
from tests.conftest import wait_for

from .factories import log_predictions, make_deployment


@pytest.mark.django_db(transaction=True)
def test_new_deployment_gets_count_windows_and_a_calibration_from_its_holdout(project, users, celery_worker):
    from apps.deployments.services import deployment_create, deployment_version_set
    from tests.registry.factories import make_classification_frame, make_logreg, register_ready_version

    owner = users["owner"]
    X, y, names = make_classification_frame(n=300, n_features=4)
    v1 = register_ready_version(project, owner, make_logreg(X, y), X, y, names, "binary_classification",
                                model_name="churn")
    dep = deployment_create(project=project, actor=owner, version=v1, slug="churn-first", owner=owner,
                            override_reason="test: first version")
    ms = wait_for(lambda: MonitorSettings.objects.filter(deployment=dep).exclude(calibration_source="").first(),
                  message="the deploy-time calibration")
    assert (ms.window_kind, ms.window_count) == ("count", 1000)
    assert ms.calibration_source == "v1's labelled holdout (300 rows), fitted when it went live"

    # a version without a holdout: the page says why there is no estimate, instead of "none yet"
    v2 = register_ready_version(project, owner, make_logreg(X, y), X, y, names, "binary_classification",
                                model_name="churn", with_holdout=False)
    deployment_version_set(deployment=dep, actor=owner, version=v2, reason="test")
    wait_for(lambda: MonitorSettings.objects.get(deployment=dep).calibration_source.startswith("none: v2"),
             message="the calibration source of v2")


@pytest.mark.django_db
def test_first_predictions_show_at_the_next_tick_as_a_partial_window(project, users, settings):
    dep = make_deployment(project, users["owner"], window_kind="count")
    assert services.monitor_settings_for(dep).window_kind == "count"
    now = timezone.now()
    log_predictions(dep, n=30, start=now - timedelta(seconds=20), seconds=15)  # inside the settle time
    assert services.monitoring_tick(now=now) == {"windows": 0}
    window = MonitoringWindow.objects.get(deployment=dep)
    assert window.partial and window.n_rows == 30
    assert window.n_features == 3 and window.estimated["accuracy"]["value"] is not None

    # refreshed at most every MONITORING_PARTIAL_REFRESH_SECONDS, though the tick runs more often
    log_predictions(dep, n=20, start=now - timedelta(seconds=4), seconds=3, seed=4)
    services.monitoring_tick(now=now)
    assert MonitoringWindow.objects.get(deployment=dep).n_rows == 30
    settings.MONITORING_PARTIAL_REFRESH_SECONDS = 0
    services.monitoring_tick(now=now)
    assert MonitoringWindow.objects.get(deployment=dep, partial=True).n_rows == 50


def test_new_settings_default_to_count_windows():
    field = {f.name: f for f in MonitorSettings._meta.fields}
    assert field["window_kind"].default == "count" and field["window_count"].default == 1000


@pytest.mark.django_db
def test_empty_dashboard_looks_for_its_first_window_and_stops_once_filled(project, users, logged_in_client):
    dep = make_deployment(project, users["owner"], window_kind="count")
    client = logged_in_client(users["analyst"])
    url = f"/projects/{project.slug}/monitoring/{dep.slug}/"
    html = client.get(url).content.decode()
    assert 'hx-trigger="job-finished from:body, every 10s"' in html and "within a minute of the first" in html
    now = timezone.now()
    log_predictions(dep, n=40, start=now - timedelta(seconds=10), seconds=5)
    services.monitoring_tick(now=now)
    body = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dashboard-body").content.decode()
    assert "40 predictions" in body and "every 10s" not in body and 'hx-trigger="job-finished from:body"' in body

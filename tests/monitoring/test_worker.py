"""End to end in a real Celery worker: drifted traffic → scheduled check (the beat task, through the
broker) → alert → signed webhook to a local HTTP server + email → traffic recovers → alert resolves."""

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from apps.monitoring import services
from apps.monitoring.models import Alert, AlertStatus, Notification
from tests.conftest import wait_for

from .factories import log_predictions, make_deployment

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
SECRET = "s3cret-for-tests"
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
def hook_server():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"headers": dict(self.headers), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def _verify(delivery) -> dict:
    ts = delivery["headers"]["X-Slipway-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + delivery["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(delivery["headers"]["X-Slipway-Signature"], expected)
    return json.loads(delivery["body"])


def test_drift_alert_webhook_email_and_auto_resolution(celery_worker, project, users, hook_server, settings,
                                                       mailoutbox):
    from workers.monitoring import monitoring_tick

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    url, received = hook_server
    dep = make_deployment(project, users["owner"])
    ms = services.monitor_settings_for(dep)
    ms.window_minutes, ms.last_window_end = 15, T0
    ms.save()
    services.alert_rule_create(deployment=dep, actor=users["analyst"], name="amount drift", metric="drift:amount",
                               comparator="gte", threshold=0.2, consecutive=1, severity="critical",
                               channels=["email", "webhook"], emails=["oncall@example.com"], webhook_url=url,
                               webhook_secret=SECRET, cooldown_minutes=0)
    log_predictions(dep, n=2000, start=T0, seconds=890, shift=0.6, seed=1)  # injected drift

    monitoring_tick.delay((T0 + timedelta(minutes=16)).isoformat())
    alert = wait_for(lambda: Alert.objects.filter(rule__deployment=dep).first(), message="an alert")
    assert alert.status == AlertStatus.OPEN and alert.severity == "critical"
    wait_for(lambda: len(received) >= 1, message="the webhook")
    payload = _verify(received[0])
    assert payload["event"] == "alert.opened" and payload["deployment"] == dep.slug and payload["value"] >= 0.2
    wait_for(lambda: Notification.objects.filter(alert=alert, status="delivered").count() == 2,
             message="both notifications delivered")
    assert any("alert.opened" in m.subject and "oncall@example.com" in m.to for m in mailoutbox)

    log_predictions(dep, n=2000, start=T0 + timedelta(minutes=15), seconds=890, shift=0.0, seed=2)  # recovered
    monitoring_tick.delay((T0 + timedelta(minutes=31)).isoformat())
    wait_for(lambda: Alert.objects.get(pk=alert.pk).status == AlertStatus.RESOLVED, message="auto-resolution")
    wait_for(lambda: len(received) >= 2, message="the resolution webhook")
    assert _verify(received[1])["event"] == "alert.resolved"
    assert Alert.objects.filter(rule__deployment=dep).count() == 1


def test_outcomes_100k_in_one_post_become_a_job_that_labels_every_window(project, users, celery_worker,
                                                                          api_client):
    """100,000 outcomes in one post: validated, answered 202 at once (no server timeout), ingested by the
    worker with progress; every window that received labels is refreshed, each label counted once."""
    from apps.monitoring.models import MonitoringWindow, Outcome
    from apps.projects.models import Job

    deployment = make_deployment(project, users["owner"], slug="big-outcomes")
    services.monitor_settings_update(deployment=deployment, actor=users["owner"], window_kind="count",
                                     window_count=10_000)
    ids, score = log_predictions(deployment, n=100_000, start=T0, seconds=3600)
    assert services.monitoring_tick(now=T0 + timedelta(hours=2))["windows"] == 10
    items = [{"request_id": str(r), "label": int(s > 0.5)} for r, s in zip(ids, score, strict=True)]
    r = api_client(users["owner"]).post(f"/api/v1/deployments/{deployment.slug}/outcomes",
                                        data=json.dumps({"outcomes": items}), content_type="application/json")
    assert r.status_code == 202 and r.json()["status"] == "queued", r.content
    job = wait_for(lambda: Job.objects.filter(pk=r.json()["job_id"], status="succeeded").first(), timeout=240,
                   message="the outcomes job")
    assert job.result["created"] == 100_000 and Outcome.objects.count() == 100_000
    wait_for(lambda: sorted(MonitoringWindow.objects.filter(deployment=deployment, partial=False)
                            .values_list("n_labelled", flat=True)) == [10_000] * 10,
             timeout=120, message="every window refreshed with its own 10,000 labels")

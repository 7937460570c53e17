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


def test_a_request_id_no_prediction_had_is_unknown_once_the_log_has_caught_up(celery_worker, project, users,
                                                                               settings, tmp_path, api_client,
                                                                               monkeypatch):
    """Outcomes for a row still in a serving spool and for an id no prediction ever had: both pending at
    first; while the spool holds an older record (a slow or stuck drainer, even past
    MONITORING_LOG_MAX_WAIT_SECONDS) neither is declared unknown; once the log has caught up past the
    post, the tick (in the worker) matches the real one and a repeat post answers the bogus id unknown —
    within seconds, not MONITORING_PENDING_OUTCOME_SECONDS."""
    import time
    import uuid

    import orjson
    from django.utils import timezone

    from apps.deployments import logpipe, spool
    from apps.monitoring.models import MonitoringWindow, Outcome, PendingOutcome
    from workers.monitoring import monitoring_tick

    settings.SERVING_SPOOL_DIR = tmp_path
    settings.MONITORING_LOG_SETTLE_SECONDS = 1
    settings.MONITORING_LOG_MAX_WAIT_SECONDS = 1
    # Only this test drains its spool: an earlier test that served through the test client left this
    # process a drainer thread, and a leftover beat drain may reach the worker; both read the setting.
    settings.SERVING_DRAIN_IN_PROCESS = False
    monkeypatch.setattr(logpipe, "drain", lambda: 0)
    dep = make_deployment(project, users["owner"])
    real, bogus = str(uuid.uuid4()), str(uuid.uuid4())
    w = spool.SpoolWriter(tmp_path)  # answered 5 s ago, not drained yet
    w.append(orjson.dumps({"k": "p", "t": time.time() - 5, "d": dep.pk, "v": dep.production_version_id,
                           "b": str(uuid.uuid4()), "l": 1.0,
                           "r": [[real, {"amount": 50.0, "age": 40.0, "is_mobile": False}, 1, {"0": 0.4, "1": 0.6},
                                  None]]}) + b"\n")
    w.close()
    client = api_client(users["owner"])
    url = f"/api/v1/deployments/{dep.slug}/outcomes"

    def post():
        r = client.post(url, data=json.dumps({"outcomes": [{"request_id": real, "label": 1},
                                                           {"request_id": bogus, "label": 0}]}),
                        content_type="application/json")
        assert r.status_code in (200, 202), r.content
        return r.json()

    first = post()
    assert first["status"] == "pending" and sorted(first["pending_request_ids"]) == sorted([real, bogus])
    time.sleep(2.5)  # past the settle time and the windows' max wait: only the spool holds the mark back
    monitoring_tick.delay(timezone.now().isoformat())
    wait_for(lambda: MonitoringWindow.objects.filter(deployment=dep).exists(), message="the first tick")
    again = post()
    assert again["unknown_request_ids"] == [] and again["pending"] == 2  # the log has not caught up yet

    spool.drain_once(tmp_path, logpipe.sink)  # the drainer catches up
    time.sleep(1.5)
    monitoring_tick.delay(timezone.now().isoformat())
    wait_for(lambda: Outcome.objects.filter(request_id=real).exists(), message="the spooled row's outcome matched")
    assert list(PendingOutcome.objects.values_list("request_id", flat=True)) == [uuid.UUID(bogus)]
    last = post()
    assert last["unknown_request_ids"] == [bogus] and last["pending"] == 0 and last["unchanged"] == 1

"""*Test webhook* on the alert-rules page: a signed test payload goes to the rule's webhook through the same
delivery as alerts (a real worker), and the page shows the answer — the status code, or the error — beside
the rule, without a reload; the result stays on the page. The receivers are real local HTTP servers."""

import hashlib
import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from playwright.sync_api import expect

from apps.monitoring import services
from apps.monitoring.models import Notification
from apps.projects.models import AuditEvent
from tests.monitoring.factories import make_deployment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SECRET = "webhook-test-secret"


@pytest.fixture
def receiver():
    """A local HTTP server: 200 on /ok, 500 on /broken; records what it received."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(200 if self.path == "/ok" else 500)
            self.end_headers()
            self.wfile.write(b"thanks" if self.path == "/ok" else b"boom")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_test_fire_shows_status_code_or_error_beside_the_rule(page, live_server, login, shot, celery_worker,
                                                             project, users, receiver):
    base, received = receiver
    owner, analyst = users["owner"], users["analyst"]
    dep = make_deployment(project, owner, slug="churn-hooks")
    rules = {}
    for name, url in (("pager", f"{base}/ok"), ("broken receiver", f"{base}/broken"),
                      ("nobody listening", f"http://127.0.0.1:{_closed_port()}/hook")):
        rules[name] = services.alert_rule_create(deployment=dep, actor=owner, name=name, metric="share_drifted",
                                                 comparator="gte", threshold=0.5, channels=["webhook"],
                                                 webhook_url=url, webhook_secret=SECRET)

    login(page, analyst)
    page.goto(f"{live_server.url}/projects/{project.slug}/monitoring/{dep.slug}/configure/")
    page.wait_for_load_state("load")
    page.evaluate("window.__sameDocument = true")

    row = page.locator(f"#rule-{rules['pager'].pk}")
    row.get_by_role("button", name="Test webhook").click()
    result = page.locator(f"#webhook-test-{rules['pager'].pk}")
    expect(result).to_contain_text("delivered", timeout=30_000)
    expect(result).to_contain_text("HTTP 200")
    # what the receiver got: one signed POST, marked as a test, no alert
    assert len(received) == 1 and received[0]["path"] == "/ok"
    hit = received[0]
    body = json.loads(hit["body"])
    assert hit["headers"]["X-Slipway-Event"] == "alert.test"
    assert body["test"] is True and body["rule"] == "pager" and body["deployment"] == dep.slug
    mac = hmac.new(SECRET.encode(), hit["headers"]["X-Slipway-Timestamp"].encode() + b"." + hit["body"],
                   hashlib.sha256).hexdigest()
    assert hit["headers"]["X-Slipway-Signature"] == f"sha256={mac}"

    page.locator(f"#rule-{rules['broken receiver'].pk}").get_by_role("button", name="Test webhook").click()
    broken = page.locator(f"#webhook-test-{rules['broken receiver'].pk}")
    expect(broken).to_contain_text("failed", timeout=30_000)
    expect(broken).to_contain_text("HTTP 500")

    page.locator(f"#rule-{rules['nobody listening'].pk}").get_by_role("button", name="Test webhook").click()
    refused = page.locator(f"#webhook-test-{rules['nobody listening'].pk}")
    expect(refused).to_contain_text("failed", timeout=30_000)
    expect(refused).to_contain_text("Connection refused")
    assert page.evaluate("window.__sameDocument") is True  # htmx swaps, no reload
    shot(page, "analyst-configure-webhook-tests")

    # tried once each (a test is not retried), recorded, audited; the results stay on the page
    assert Notification.objects.filter(event="test").count() == 3
    assert Notification.objects.get(rule=rules["broken receiver"]).attempts == 1
    assert len(received) == 2
    assert AuditEvent.objects.filter(verb="monitoring.alert_rule_webhook_test").count() == 3
    page.reload()
    expect(page.locator(f"#webhook-test-{rules['pager'].pk}")).to_contain_text("HTTP 200")
    expect(page.locator(f"#webhook-test-{rules['broken receiver'].pk}")).to_contain_text("HTTP 500")


def test_only_people_who_configure_may_test_fire(logged_in_client, project, users):
    dep = make_deployment(project, users["owner"], slug="churn-hooks-2")
    rule = services.alert_rule_create(deployment=dep, actor=users["owner"], name="pager", metric="share_drifted",
                                      comparator="gte", threshold=0.5, channels=["email"], emails=["a@example.com"])
    url = f"/projects/{project.slug}/monitoring/{dep.slug}/configure/rules/{rule.pk}/test/"
    assert logged_in_client(users["manager"]).post(url).status_code == 403
    # a rule without a webhook: refused with the reason, nothing sent
    resp = logged_in_client(users["analyst"]).post(url, HTTP_HX_REQUEST="true")
    assert resp.status_code == 422 and "no webhook URL" in resp.content.decode()
    assert not Notification.objects.exists()

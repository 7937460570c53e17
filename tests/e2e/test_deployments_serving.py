"""Deployments in a real browser: deploy a ready version, create a key, call the endpoint with the curl
example the page shows, watch the prediction appear, pause it (audited) and see callers get 503."""

import json
import re
import subprocess

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def serving_settings(settings, tmp_path):
    from apps.deployments import logpipe, serving

    settings.SERVING_SPOOL_DIR = tmp_path / "spool"
    settings.SERVING_DRAIN_IN_PROCESS = True
    settings.SERVING_DRAIN_INTERVAL = 0.5
    settings.SERVING_STATE_TTL = 0.2
    logpipe.flush_own_segment()
    logpipe._writer = None
    serving.CACHE.clear()
    yield
    logpipe.flush_own_segment()
    logpipe._writer = None
    serving.CACHE.clear()


def test_deploy_call_with_shown_curl_and_see_prediction(page, live_server, login, shot, project_with_roles,
                                                        serving_settings):
    from tests.registry.factories import make_classification_frame, make_logreg, register_ready_version

    project, users = project_with_roles
    owner = users["owner"]
    X, y, names = make_classification_frame(n=200, n_features=4)
    register_ready_version(project, owner, make_logreg(X, y), X, y, names, "binary_classification",
                           model_name="churn")

    login(page, owner)
    page.goto(f"{live_server.url}/projects/{project.slug}/deployments/")
    expect(page.locator(".empty")).to_contain_text("No deployments yet")
    shot(page, "deployments-list-empty")
    page.get_by_role("link", name="New deployment").click()
    page.select_option("#id_version", label="churn v1")
    page.fill("#id_slug", "churn-api")
    page.select_option("#id_owner", value="")  # no owner but "go live": refused with a clear message
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#id_owner_errors")).to_contain_text("without an owner cannot go live")
    page.select_option("#id_owner", label=owner.username)
    page.get_by_role("button", name="Deploy").click()  # no unreviewed first release: refused without a request
    expect(page.locator("#id_go_live_errors")).to_contain_text("approved promotion request")
    page.fill("#id_override_reason", "Pilot service; the first review is booked for Monday")  # the owner's override
    shot(page, "deployments-create-form")
    page.get_by_role("button", name="Deploy").click()
    expect(page).to_have_url(re.compile(r"/deployments/churn-api/$"))
    expect(page.locator("#deployment-status")).to_have_text("Live")
    page.wait_for_load_state("load")  # htmx is active once plotly.js (a large script) has loaded

    page.fill("#id_key_name", "checkout-service")
    page.get_by_role("button", name="Create API key").click()
    expect(page.locator("#new-key")).to_be_visible()
    curl = page.locator("#new-key-curl").inner_text()
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("sdk_") and key in curl and "churn-api/predict" in curl
    shot(page, "deployments-key-created")

    out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
    answer = json.loads(out.stdout)
    assert answer["model_version"]["version"] == "v1", answer
    request_id = answer["predictions"][0]["request_id"]

    # the recent-predictions table refreshes itself (htmx) once the drainer has stored the record
    expect(page.locator("#predictions")).to_contain_text(request_id, timeout=20_000)
    page.reload()
    expect(page.locator("#charts .plotly-chart").first).to_be_visible(timeout=10_000)
    shot(page, "deployments-detail")

    page.fill("input[name=reason]", "retraining")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#deployment-status")).to_have_text("Paused")
    paused = json.loads(subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30).stdout)
    assert "paused: retraining" in paused["detail"]
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#deployment-status")).to_have_text("Live")

    page.wait_for_load_state("load")
    page.on("dialog", lambda d: d.accept())  # hx-confirm
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator("#api-keys")).to_contain_text("revoked")
    revoked = json.loads(subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30).stdout)
    assert "revoked" in revoked["detail"]
    page.get_by_role("link", name="Audit log").click()
    for verb in ("deployment.deploy", "deployment.key_create", "deployment.pause", "deployment.resume",
                 "deployment.key_revoke"):
        expect(page.locator("#audit-table")).to_contain_text(verb)

    page.goto(f"{live_server.url}/projects/{project.slug}/deployments/")
    expect(page.locator("table")).to_contain_text("churn-api")
    shot(page, "deployments-list")

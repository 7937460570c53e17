"""Retraining in a real browser with real workers: an owner configures the deployment's policy, presses
"Retrain now", watches the training job's progress in the history, and opens the promotion request the
chain produced (shadow run in between). Beat is emulated by a thread sending the periodic tasks."""

import re
import threading

import pytest
from playwright.sync_api import expect

from apps.projects.services import project_settings_update
from tests.training.retraining_factories import (
    accuracy_rule,
    degrading_world,
    log_fresh_traffic,
    log_traffic,
    post_outcomes,
    require_promotion,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def beat():
    """Send the retraining and shadow ticks through the broker every second, as celery beat would."""
    from portal.celery import app

    stop = threading.Event()

    def run():
        while not stop.wait(1.0):
            app.send_task("workers.retraining.retraining_tick")
            app.send_task("workers.releases.shadow_tick")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=5)


def test_owner_configures_policy_retrains_now_and_opens_the_promotion_request(page, live_server, login, shot,
                                                                               project, users, celery_worker, beat):
    require_promotion()
    w = degrading_world(project=project, owner=users["owner"])
    project_settings_update(project=project, actor=users["owner"], values={"promotion": {"min_shadow_requests": 200}})
    log_traffic(w)
    post_outcomes(w, users["analyst"])
    accuracy_rule(w, users["analyst"])

    login(page, users["owner"])
    page.goto(f"{live_server.url}/projects/{project.slug}/monitoring/{w.deployment.slug}/retraining/")
    expect(page.get_by_text("Not set up yet")).to_be_visible()
    page.get_by_label("accuracy below 0.8", exact=False).check()
    page.select_option("#id_metric_1", "drift:n_tx")
    page.select_option("#id_comparator_1", "gt")
    page.fill("#id_threshold_1", "0.2")
    page.fill("#id_windows_1", "3")
    page.fill("#id_cooldown_minutes", "120")
    page.fill("#id_min_new_labels", "500")
    shot(page, "monitoring-retraining-configure")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#new-labels")).to_contain_text("2820")
    expect(page.locator("#blocked-by")).to_contain_text("yes")

    page.fill("#retrain-now-form input[name=reason]", "labels show a new fraud pattern")
    page.get_by_role("button", name="Retrain now").click()
    row = page.locator("#firings tr.firing").first
    expect(row).to_contain_text("Retrain now by owner")
    expect(row.locator(".training-progress, .badge-validating, .badge-shadow, .badge-awaiting_review").first
           ).to_be_visible(timeout=60_000)
    shot(page, "monitoring-retraining-progress")
    # the shadow run scores only requests answered after the candidate was registered: send some
    from apps.releases.models import ShadowRun
    from tests.conftest import wait_for

    wait_for(lambda: ShadowRun.objects.filter(deployment=w.deployment).exists(), timeout=180,
             message="the retraining's shadow run")
    log_fresh_traffic(w)
    link = page.get_by_role("link", name="Promotion request #")
    expect(link).to_be_visible(timeout=240_000)
    expect(row).to_contain_text("Promotion request awaiting review")
    expect(row).to_contain_text("Training job #")
    expect(row).to_contain_text("Shadow run #")
    expect(row.locator(".produced .badge-open")).to_have_text("open")  # the request's status now
    shot(page, "monitoring-retraining-history")

    link.click()
    expect(page).to_have_url(re.compile(r".*/promotions/\d+/$"))
    expect(page.get_by_text("labels show a new fraud pattern").first).to_be_visible()
    shot(page, "monitoring-retraining-promotion-request")

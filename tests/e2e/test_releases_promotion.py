"""Shadow and promotion in a real browser with two users and a real worker: the data scientist starts a
shadow run and requests promotion; the reviewer reads the evidence and approves; the deployment page
shows the new version."""

import re

import pytest
from playwright.sync_api import expect

import apps.releases.models  # noqa: F401  (models registered before the test database exists)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def serving_settings(settings, tmp_path):
    from apps.deployments import logpipe, serving

    settings.SERVING_SPOOL_DIR = tmp_path / "spool"
    settings.SERVING_DRAIN_IN_PROCESS = False
    settings.SERVING_STATE_TTL = 0.2
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    logpipe.flush_own_segment()
    logpipe._writer = None
    serving.CACHE.clear()
    yield
    logpipe.flush_own_segment()
    logpipe._writer = None
    serving.CACHE.clear()


def test_shadow_request_review_approve_and_see_new_version(page, browser, live_server, login, shot, celery_worker,
                                                            project_with_roles, serving_settings, client, api_client):
    from tests.releases.factories import deploy, post_outcomes, send_traffic, versions

    project, users = project_with_roles
    ds, reviewer = users["data_scientist"], users["reviewer"]
    weak, strong = versions(project, ds)
    dep, key = deploy(project, users["owner"], weak)
    pairs = send_traffic(client, dep.slug, key, n=300)
    post_outcomes(api_client(users["analyst"]), dep.slug, pairs)

    # The project owner sets the promotion policy on its page.
    owner_ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    opage = owner_ctx.new_page()
    login(opage, users["owner"])
    opage.goto(f"{live_server.url}/projects/{project.slug}/promotions/policy")
    opage.fill("#id_min_labelled", "100")
    opage.fill("#id_min_shadow_requests", "100")
    shot(opage, "promotion-policy")
    opage.get_by_role("button", name="Save policy").click()
    expect(opage.locator(".flash")).to_contain_text("Promotion policy saved")

    # The data scientist starts a shadow run of v2 from the deployment's shadow page.
    login(page, ds)
    page.goto(f"{live_server.url}/projects/{project.slug}/deployments/{dep.slug}/shadow/")
    page.select_option("#id_candidate", label="fraud-model v2")
    shot(page, "promotion-shadow-start")
    page.get_by_role("button", name="Start shadowing").click()
    expect(page).to_have_url(re.compile(r"/shadow/\d+/$"))
    page.wait_for_load_state("load")
    # The worker scores the logged traffic; the comparison updates in the page (htmx polling).
    expect(page.locator("#cmp-verdict")).to_contain_text("better", timeout=45_000)
    expect(page.locator("#cmp-labelled")).to_have_text("300")
    expect(page.locator(".plotly-chart .main-svg").first).to_be_visible(timeout=15_000)
    shot(page, "promotion-shadow-comparison")

    page.get_by_role("link", name="Request promotion").click()
    expect(page.locator("#id_candidate")).to_have_value(str(strong.pk))
    page.fill("#id_justification", "Uses every feature; significantly more accurate in shadow.")
    page.get_by_role("button", name="Open the request").click()
    expect(page).to_have_url(re.compile(r"/promotions/\d+/$"))
    expect(page.locator("#gates")).not_to_contain_text("fail")
    expect(page.locator("#review-panel")).to_contain_text("you cannot review it")
    expect(page.locator("#review-form")).to_have_count(0)
    shot(page, "promotion-request-requester")

    # The reviewer, in another browser session, finds it in the inbox, reads the evidence and approves.
    other = browser.new_context(viewport={"width": 1280, "height": 860})
    rpage = other.new_page()
    login(rpage, reviewer)
    rpage.goto(f"{live_server.url}/promotions/inbox")
    expect(rpage.locator("#promotion-requests")).to_contain_text(dep.slug)
    shot(rpage, "promotion-inbox")
    rpage.locator("#promotion-requests a").first.click()
    rpage.wait_for_load_state("load")
    expect(rpage.locator("#offline-metrics")).to_contain_text("accuracy")
    expect(rpage.locator("#cmp-tests")).to_contain_text("McNemar")
    expect(rpage.locator(".plotly-chart .main-svg").first).to_be_visible(timeout=15_000)
    shot(rpage, "promotion-request-evidence")
    rpage.get_by_label("Approve").check()
    rpage.fill("#id_comment", "Shadow evidence is significant; lineage checked.")
    rpage.get_by_role("button", name="Submit review").click()
    expect(rpage.locator("#review-panel")).to_contain_text("Approved and promoted")
    expect(rpage.locator("#request-status")).to_have_text("Approved and promoted")
    shot(rpage, "promotion-approved")

    rpage.goto(f"{live_server.url}/projects/{project.slug}/deployments/{dep.slug}/")
    expect(rpage.locator(".stat").first).to_contain_text("fraud-model v2")
    shot(rpage, "promotion-deployment-new-version")
    rpage.goto(f"{live_server.url}/projects/{project.slug}/deployments/{dep.slug}/releases")
    expect(rpage.locator("#release-timeline")).to_contain_text("Promotion request")
    expect(rpage.locator("#rollback-form")).to_have_count(0)  # reviewers cannot roll back
    shot(rpage, "promotion-releases")
    other.close()

    # The owner tries the old version as a 10 % canary, stops it, then rolls back in one action.
    opage.goto(f"{live_server.url}/projects/{project.slug}/deployments/{dep.slug}/releases")
    opage.select_option("#canary-form select[name=candidate]", label="fraud-model v1")
    opage.fill("#canary-form input[name=percent]", "10")
    opage.get_by_role("button", name="Start canary").click()
    expect(opage.locator("#canary")).to_contain_text("10%")
    shot(opage, "promotion-canary")
    opage.get_by_role("button", name="Stop canary").click()
    expect(opage.locator("#canary")).to_contain_text("No canary")
    opage.fill("#rollback-form input[name=reason]", "latency regression in checkout")
    opage.get_by_role("button", name="Roll back to v1").click()
    expect(opage.locator("#production-version")).to_have_text("fraud-model v1")
    expect(opage.locator("#release-timeline li").first).to_contain_text("latency regression in checkout")
    shot(opage, "promotion-rolled-back")
    owner_ctx.close()

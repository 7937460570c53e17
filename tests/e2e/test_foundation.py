"""Foundation in a real browser: log in, create a project, add a member with htmx, read the audit log."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_owner_creates_project_adds_member_with_htmx_and_sees_audit(page, live_server, login, shot, make_user,
                                                                     celery_worker):
    owner = make_user("olivia", first_name="Olivia")
    make_user("dana")
    login(page, owner)
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    shot(page, "foundation-projects-empty")

    page.get_by_role("link", name="New project").first.click()
    page.get_by_role("button", name="Create project").click()  # empty name → inline error, nothing saved
    expect(page.locator("#id_name_errors")).to_contain_text("required")
    page.fill("#id_name", "Customer churn")
    page.fill("#id_description", "Predict cancellations 30 days ahead.")
    shot(page, "foundation-project-form")
    page.get_by_role("button", name="Create project").click()
    expect(page).to_have_url(re.compile(r"/projects/customer-churn/$"))
    expect(page.locator(".flash-success")).to_contain_text("created")
    shot(page, "foundation-project-overview")

    page.get_by_role("link", name="Members", exact=True).click()
    url_before = page.url
    page.fill("#id_username", "nobody")
    page.click("#members button[type=submit]")
    expect(page.locator("#members .errorlist")).to_contain_text("No active user")
    page.fill("#id_username", "dana")
    page.select_option("#id_role", "data_scientist")
    with page.expect_response(lambda r: "/members/add/" in r.url and r.status == 200):
        page.click("#members button[type=submit]")
    expect(page.locator("#member-dana")).to_be_visible()
    assert page.url == url_before  # swapped by htmx, no full page load
    # htmx binds the new row's change trigger only once the swap has settled: a change before that is lost
    page.wait_for_function("() => !document.querySelector('.htmx-swapping, .htmx-settling, .htmx-request')")
    with page.expect_response(lambda r: "/role/" in r.url and r.status == 200):
        page.select_option("select[aria-label='Role of dana']", "reviewer")
    expect(page.locator("#member-dana select")).to_have_value("reviewer")
    shot(page, "foundation-members")

    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("#audit-table")).to_contain_text("member.add")
    expect(page.locator("#audit-table")).to_contain_text("member.role")
    page.select_option("#id_verb", "member.add")
    expect(page.locator("#audit-table")).not_to_contain_text("project.create")
    page.get_by_role("button", name="Export CSV").click()
    expect(page.locator("#export-status")).to_contain_text("Export audit log")
    expect(page.locator("#export-status [data-job-status]")).to_have_attribute("data-job-status", "succeeded",
                                                                               timeout=30_000)
    shot(page, "foundation-audit")
    with page.expect_download() as download:
        page.locator("#export-status").get_by_role("link").click()
    assert "member.add" in open(download.value.path()).read()


def test_member_without_right_is_refused_and_outsider_sees_404(page, live_server, login, shot, project, users):
    login(page, users["analyst"])
    resp = page.goto(f"{live_server.url}/projects/fraud/settings/")
    assert resp.status == 403
    expect(page.get_by_text("Not allowed")).to_be_visible()
    shot(page, "foundation-forbidden")
    page.goto(f"{live_server.url}/projects/fraud/members/")
    expect(page.locator("#members select")).to_have_count(0)  # analysts see members but cannot manage
    page.context.clear_cookies()
    login(page, users["outsider"])
    resp = page.goto(f"{live_server.url}/projects/fraud/")
    assert resp.status == 404


def test_api_token_created_once_and_revoked(page, live_server, login, shot, make_user):
    user = make_user("tokenuser")
    login(page, user)
    page.goto(f"{live_server.url}/account/tokens/")
    page.fill("#id_name", "my notebook")
    page.click("#tokens button[type=submit]")
    token = page.locator("#new-token").inner_text()
    assert token.startswith("slw_")
    shot(page, "foundation-tokens")
    assert _api_status(f"{live_server.url}/api/v1/projects", token) == 200
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator("#tokens")).to_contain_text("revoked")
    assert _api_status(f"{live_server.url}/api/v1/projects", token) == 401


def test_narrow_window_layout(page, live_server, login, shot, project, users):
    page.set_viewport_size({"width": 390, "height": 800})
    login(page, users["owner"])
    page.goto(f"{live_server.url}/projects/fraud/members/")
    expect(page.locator("#members")).to_be_visible()
    shot(page, "foundation-narrow-members")


def _api_status(url: str, token: str) -> int:
    """Call the API as a script would: no browser cookies, only the token."""
    import requests

    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code

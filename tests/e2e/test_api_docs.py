"""The interactive API documentation (Swagger UI served by the portal itself) renders under the strict
Content-Security-Policy: no inline script, no style attribute, nothing from another host."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_api_docs_render_with_the_strict_csp(page, live_server, login, shot, project_with_roles):
    _project, users = project_with_roles
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    login(page, users["data_scientist"])
    page.goto(f"{live_server.url}/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Slipway", timeout=20_000)
    page.locator(".opblock-tag", has_text="deployments").first.click()
    expect(page.locator(".opblock").first).to_be_visible()
    shot(page, "api-docs", axe=False)  # Swagger UI's own markup: axe findings there are not ours to fix
    assert all(u.startswith(live_server.url) or u.startswith("data:") for u in requests), \
        [u for u in requests if not u.startswith(live_server.url)]

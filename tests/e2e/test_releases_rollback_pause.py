"""The emergency rollback in a real browser: the owner rolls back, the canary and the shadow run of the
other candidate show as paused (and on the timeline); the owner resumes both from their pages."""

import pytest
from playwright.sync_api import expect

import apps.releases.models  # noqa: F401  (models registered before the test database exists)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_rollback_pauses_the_canary_and_shadow_run_and_the_owner_resumes_them(page, live_server, login, shot,
                                                                              project_with_roles):
    from apps.deployments.models import DeploymentEvent
    from apps.deployments.services import deployment_version_set
    from apps.releases.models import ShadowRun
    from apps.releases.services import rollout, shadow
    from tests.releases.factories import deploy, versions

    project, users = project_with_roles
    owner = users["owner"]
    v1, v2, v3 = versions(project, users["data_scientist"], kinds=("weak", "strong", "weak"))
    dep, _ = deploy(project, owner, v1)
    dep = deployment_version_set(deployment=dep, actor=owner, version=v2, kind=DeploymentEvent.Kind.PROMOTE)
    rollout.canary_set(deployment=dep, actor=owner, candidate=v3, percent=30)
    run = shadow.shadow_run_start(deployment=dep, actor=owner, candidate=v3, backfill_hours=0)

    login(page, owner)
    base = f"{live_server.url}/projects/{project.slug}/deployments/{dep.slug}"
    page.goto(f"{base}/releases")
    page.fill("#rollback-form input[name=reason]", "error rate doubled")
    page.get_by_role("button", name="Roll back to v1").click()
    expect(page.locator("#production-version")).to_have_text("fraud-model v1")
    expect(page.locator("#canary-paused")).to_contain_text("fraud-model v3")
    expect(page.locator("#release-timeline")).to_contain_text("paused by the emergency rollback")
    expect(page.locator("#release-timeline")).to_contain_text(f"Shadow run #{run.pk}")
    shot(page, "rollback-paused")

    page.get_by_role("button", name="Resume canary").click()
    expect(page.locator("#canary-paused")).to_have_count(0)
    expect(page.locator("#canary")).to_contain_text("30%")
    expect(page.locator("#release-timeline li").first).to_contain_text("Canary resumed")

    page.goto(f"{base}/shadow/{run.pk}/")
    expect(page.locator("#shadow-paused")).to_be_visible()
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#shadow-paused")).to_have_count(0)
    expect(page.locator("h2 .badge")).to_have_text("Active")
    assert ShadowRun.objects.get(pk=run.pk).is_active

"""The manager's first hour on fresh projects (not the demo): the portfolio shows where each project stands
and what its figures mean; a project's readiness page has a table of contents whose links open the part
they point at, collapsible sections, and a one-line meaning for every score."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_manager_reads_portfolio_then_a_readiness_page(page, live_server, login, shot, project_with_roles):
    from apps.deployments.services import deployment_create
    from apps.projects.models import Membership, Role
    from apps.projects.services import project_create
    from tests.registry.factories import make_classification_frame, make_logreg, register_ready_version

    project, users = project_with_roles
    owner, manager = users["owner"], users["manager"]
    # one project with a live, owned deployment; one that has only just been created
    X, y, names = make_classification_frame(n=200)
    version = register_ready_version(project, owner, make_logreg(X, y), X, y, names, "binary_classification",
                                     model_name="fraud-scorer")
    deployment_create(project=project, actor=owner, version=version, slug="fraud-live", owner=owner,
                      override_reason="pilot: first review booked")
    newer = project_create(actor=owner, name="Price elasticity", slug="pricing")
    Membership.objects.create(project=newer, user=manager, role=Role.MANAGER)

    login(page, manager)
    page.get_by_role("link", name="Portfolio").click()
    expect(page).to_have_url(re.compile(r"/portfolio/"))
    table = page.locator("#portfolio-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    # deployed, but no traffic answered yet: "shadow"; nothing validated yet: "prototype"
    expect(table.locator("tr[data-project=fraud] .badge[class*=stage-]")).to_have_text("shadow")
    expect(table.locator("tr[data-project=pricing] .badge[class*=stage-]")).to_have_text("prototype")
    expect(page.locator("#fig-projects")).to_have_text("2")
    # what the stages and scores mean, one line each
    legend = page.locator("#stage-legend")
    legend.locator("summary").click()
    expect(legend).to_contain_text("no production traffic is answered yet")
    expect(legend).to_contain_text("100 when every item passes")
    expect(legend).to_contain_text("the weakest of the four groups")
    expect(page.locator("#portfolio-body .plotly-chart .main-svg").first).to_be_visible(timeout=15_000)
    shot(page, "manager-portfolio")

    table.get_by_role("link", name="Fraud detection").click()
    expect(page).to_have_url(re.compile(r"/projects/fraud/readiness/"))
    expect(page.locator("#readiness-stage")).to_have_text("Shadow")
    # every score carries its meaning
    expect(page.locator(".score-meaning").first).to_contain_text("100 when every item passes")
    expect(page.locator("#mlts-meaning")).to_contain_text("Means:")
    expect(page.locator("#mlts-meaning")).to_contain_text("the paper's reading of")
    # the table of contents names every part and its links land on them
    toc = page.get_by_role("navigation", name="On this page")
    links = toc.locator("a")
    assert links.count() >= 8
    for href in links.evaluate_all("(as) => as.map((a) => a.getAttribute('href'))"):
        assert page.locator(href).count() == 1, href
    shot(page, "manager-readiness")

    # collapsible: an ML Test Score group starts closed, its TOC link opens it; a section closes on its summary
    group = page.locator("#section-monitor")
    expect(group).not_to_have_attribute("open", "")
    toc.locator("a[href='#section-monitor']").click()
    expect(group).to_have_attribute("open", "")
    expect(page).to_have_url(re.compile(r"#section-monitor$"))
    expect(group.locator("tbody tr")).to_have_count(7)
    first = page.locator("details.readiness-section[open]").first
    section_id = first.get_attribute("id")
    first.locator("summary").first.click()
    expect(page.locator(f"#{section_id}")).not_to_have_attribute("open", "")
    page.locator(f"#{section_id} summary").first.click()
    expect(page.locator(f"#{section_id}")).to_have_attribute("open", "")

    # the brand-new project: the manager sees at once what is missing
    page.goto(f"{live_server.url}/portfolio/")
    page.locator("#portfolio-table").get_by_role("link", name="Price elasticity").click()
    expect(page.locator("#readiness-stage")).to_have_text("Prototype")
    expect(page.locator(".readiness-section .badge-fail").first).to_be_visible()
    shot(page, "manager-readiness-new-project")

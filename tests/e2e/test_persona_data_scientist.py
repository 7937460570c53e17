"""The data scientist's first hour on a fresh project: a long project name stays inside its page, the role
badge reads "Data scientist", "Include archived projects" sits by its checkbox, the two kinds of credentials
are explained where they are created, and each curl example uses the right one."""

import json
import re
import subprocess

import pytest
from playwright.sync_api import expect

from tests.e2e.test_deployments_serving import serving_settings  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)

LONG_NAME = ("Customer lifetime value and churn-risk scoring for the enterprise subscription portfolio "
             "EMEA-APAC-Americas")

NO_OVERFLOW = """
() => [...document.querySelectorAll("h1, .card, .page-head, .subtitle")]
        .filter((el) => el.scrollWidth > el.clientWidth + 1)
        .map((el) => el.className || el.tagName)
"""


@pytest.mark.usefixtures("serving_settings")
def test_data_scientist_first_hour(page, live_server, login, shot, project_with_roles):
    from apps.deployments.services import deployment_create
    from apps.projects.models import Membership, Role
    from apps.projects.services import api_token_create, project_create
    from tests.registry.factories import make_classification_frame, make_logreg, register_ready_version

    _, users = project_with_roles
    owner, ds = users["owner"], users["data_scientist"]
    project = project_create(actor=owner, name=LONG_NAME, slug="clv-churn")
    Membership.objects.create(project=project, user=ds, role=Role.DATA_SCIENTIST)

    login(page, ds)
    box = page.locator("#id_archived").bounding_box()
    label = page.locator("label[for=id_archived]").bounding_box()
    assert label["x"] - (box["x"] + box["width"]) < 16 and abs(label["y"] - box["y"]) < 20, (box, label)
    expect(page.locator("label[for=id_archived]")).to_have_text("Include archived projects")
    shot(page, "ds-projects")

    page.get_by_role("link", name=LONG_NAME).click()
    expect(page.locator(".subtitle .badge")).to_have_text("Data scientist")
    assert page.evaluate(NO_OVERFLOW) == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "ds-project-long-name")

    # the personal token page explains both credentials
    page.goto(f"{live_server.url}/account/tokens/")
    help_ = page.locator("#credentials-help")
    expect(help_).to_contain_text("Personal API token")
    expect(help_).to_contain_text("Deployment API key")
    expect(help_).to_contain_text("posting outcomes")
    shot(page, "ds-tokens")

    X, y, names = make_classification_frame(n=200, n_features=4)
    version = register_ready_version(project, ds, make_logreg(X, y), X, y, names, "binary_classification",
                                     model_name="clv")
    # a first version goes live through a promotion request, or by the owner's recorded override
    deployment_create(project=project, actor=owner, version=version, slug="clv-api", owner=ds,
                      override_reason="first version of a new project, reviewed in the kick-off")
    page.goto(f"{live_server.url}/projects/{project.slug}/deployments/clv-api/")
    expect(page.locator("#curl-example")).to_contain_text("Bearer $SLIPWAY_API_KEY")
    expect(page.locator("#curl-example")).to_contain_text("/clv-api/predict")
    expect(page.locator("#outcomes-curl")).to_contain_text("Bearer $SLIPWAY_TOKEN")
    expect(page.locator("#outcomes-curl")).to_contain_text("/clv-api/outcomes")
    expect(page.locator("#curl-help")).to_contain_text("deployment API key")
    page.locator("#curl-example").focus()  # the example can be reached and scrolled by keyboard
    assert page.evaluate("document.activeElement.id") == "curl-example"
    page.wait_for_load_state("load")
    page.fill("#id_key_name", "scoring-service")
    page.get_by_role("button", name="Create API key").click()
    curl = page.locator("#new-key-curl").inner_text()
    shot(page, "ds-deployment-key")

    # a personal token on /predict is refused with a message naming the right credential
    token = api_token_create(user=ds, name="notebook")[1]
    wrong = re.sub(r"Bearer \S+'", f"Bearer {token}'", curl)
    answer = json.loads(subprocess.run(["bash", "-c", wrong], capture_output=True, text=True, timeout=30).stdout)
    assert "personal API token" in answer["detail"] and "deployment API key" in answer["detail"], answer
    ok = json.loads(subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30).stdout)
    assert ok["predictions"], ok

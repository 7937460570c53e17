"""Registry in a real browser: a data scientist uploads a model through the form, watches validation
finish (real Celery worker), opens the version page and compares two versions; an analyst cannot upload."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_data_scientist_uploads_watches_validation_and_compares(page, live_server, login, shot, celery_worker,
                                                                project_with_roles, tmp_path):
    from apps.registry import services
    from tests.registry import factories as f

    project, users = project_with_roles
    ds = users["data_scientist"]
    X, y, names = f.make_classification_frame()
    model = services.registered_model_create(project=project, actor=ds, name="churn", task="binary_classification",
                                             input_contract=f.contract_for(names), description="Who leaves next month")
    f.register_ready_version(project, ds, f.make_logreg(X, y), X, y, names, "binary_classification", model=model,
                             tags="baseline")
    artifact = tmp_path / "churn_hgb.joblib"
    artifact.write_bytes(f.joblib_bytes(f.make_hgb_pipeline(X, y), compress=3))
    holdout = tmp_path / "holdout.csv"
    holdout.write_bytes(f.table_csv_bytes(X, y))

    login(page, ds)
    page.goto(f"{live_server.url}/projects/fraud/models/")
    page.get_by_role("link", name="churn").click()
    page.get_by_role("link", name="Upload version").click()
    page.set_input_files("#id_artifact", str(artifact))
    page.set_input_files("#id_holdout", str(holdout))
    # the holdout is checked against the declared contract before anything is uploaded (htmx)
    expect(page.locator("#contract-check-ok")).to_contain_text("Every contract feature is in the file")
    expect(page.locator("#contract-preview tbody tr")).to_have_count(len(names))
    expect(page.locator("#contract-preview .badge-ok")).to_have_count(len(names))
    expect(page.locator("#upload-form")).not_to_contain_text("{#")  # no template comment shown as text
    page.locator("#contract-preview").scroll_into_view_if_needed()
    shot(page, "registry-upload-contract-check")
    page.fill("#id_tags", "hgb, candidate")
    page.fill("#id_code_ref", "git:4f2a9c1")
    page.fill("#id_parent_version", "1")
    page.fill("#id_model_card", "# Churn HGB\n\nGradient boosting on **4 features**.")
    shot(page, "registry-upload-form")
    page.get_by_role("button", name="Upload and validate").click()
    page.wait_for_url("**/models/churn/v2/")
    expect(page.locator("#version-badge")).to_have_text("Ready", timeout=120_000)
    expect(page.locator("#metrics")).to_contain_text("roc_auc")
    expect(page.locator("#lineage")).to_contain_text("git:4f2a9c1")
    expect(page.locator(".markdown strong")).to_have_text("4 features")
    shot(page, "registry-version")

    page.get_by_role("link", name="Compare").click()
    expect(page.locator("#chart-metrics .main-svg").first).to_be_visible(timeout=15_000)
    expect(page.locator("#param-diff")).to_contain_text("hgb")
    page.locator("#profile-diff a", has_text="Chart").nth(2).click()
    expect(page.locator("#profile-chart")).to_contain_text("Reference distribution of f2", timeout=15_000)
    expect(page.locator("#profile-chart .main-svg").first).to_be_visible(timeout=15_000)
    shot(page, "registry-compare")
    page.goto(f"{live_server.url}/projects/fraud/models/churn/")
    expect(page.locator("#versions")).to_contain_text("v2")
    shot(page, "registry-model")


def test_analyst_cannot_upload(page, live_server, login, project_with_roles):
    from apps.registry import services
    from tests.registry import factories as f

    project, users = project_with_roles
    services.registered_model_create(project=project, actor=users["owner"], name="churn",
                                     task="binary_classification", input_contract=f.contract_for(["a", "b"]))
    login(page, users["analyst"])
    page.goto(f"{live_server.url}/projects/fraud/models/churn/")
    expect(page.get_by_role("heading", name="Versions")).to_be_visible()
    expect(page.get_by_role("link", name="Upload version")).to_have_count(0)
    response = page.goto(f"{live_server.url}/projects/fraud/models/churn/upload/")
    assert response.status == 403

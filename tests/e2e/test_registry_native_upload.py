"""A data scientist uploads an XGBoost JSON model through the upload form (real browser, real worker): the
page reports the format found in the bytes, the metrics, and the verified ONNX serving form; a truncated
LightGBM file is rejected with its reason on the version page."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_xgboost_json_through_the_form_and_a_truncated_lightgbm_file(page, live_server, login, shot, celery_worker,
                                                                     project_with_roles, tmp_path):
    from apps.registry import services
    from tests.registry import factories as f

    project, users = project_with_roles
    ds = users["data_scientist"]
    X, y, names = f.make_classification_frame(n=300)
    services.registered_model_create(project=project, actor=ds, name="churn-xgb", task="binary_classification",
                                     input_contract=f.contract_for(names))
    artifact = tmp_path / "churn.json"
    artifact.write_bytes(f.native_bytes(f.make_booster("xgboost", "classifier", X, y)))
    holdout = tmp_path / "holdout.csv"
    holdout.write_bytes(f.table_csv_bytes(X, y))
    lgb_text = f.native_bytes(f.make_booster("lightgbm", "classifier", X, y))
    broken = tmp_path / "churn.txt"
    broken.write_bytes(lgb_text[: len(lgb_text) // 2])

    login(page, ds)
    page.goto(f"{live_server.url}/projects/{project.slug}/models/churn-xgb/")
    page.get_by_role("link", name="Upload version").click()
    page.set_input_files("#id_artifact", str(artifact))
    page.set_input_files("#id_holdout", str(holdout))
    page.get_by_role("button", name="Upload and validate").click()
    page.wait_for_url("**/models/churn-xgb/v1/")
    expect(page.locator("#version-badge")).to_have_text("Ready", timeout=120_000)
    expect(page.locator("main")).to_contain_text("xgboost")
    expect(page.locator("main")).to_contain_text("ONNX verified")
    expect(page.locator("#metrics")).to_contain_text("roc_auc")
    shot(page, "registry-xgboost-version")

    page.goto(f"{live_server.url}/projects/{project.slug}/models/churn-xgb/")
    page.get_by_role("link", name="Upload version").click()
    page.set_input_files("#id_artifact", str(broken))
    page.get_by_role("button", name="Upload and validate").click()
    page.wait_for_url("**/models/churn-xgb/v2/")
    expect(page.locator("#version-badge")).to_have_text("Rejected", timeout=120_000)
    expect(page.locator("main")).to_contain_text("truncated file or a forged size")
    shot(page, "registry-lightgbm-rejected")

"""From a fitted model to an approved, monitored deployment on a fresh project, timed (the README's "First
hour, measured"): the data scientist uploads the model with its holdout and requests promotion of a paused
deployment; the reviewer finds it in the inbox, reads the evidence and approves, which puts it live; a
service sends predictions; the analyst's dashboard, open the whole time, fills within a minute of the first
predictions — without *Check now* and without a reload — with a performance estimate calibrated on the
version's holdout when it went live. Real Celery worker and a real ``celery beat`` process."""

import json
import re
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS_DIR, wait_for
from tests.e2e.test_deployments_serving import serving_settings  # noqa: F401 - a fixture

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _predict(url: str, key: str, rows: list[dict]) -> dict:
    req = urllib.request.Request(url, data=json.dumps({"instances": rows}).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the live test server
        return json.loads(resp.read())


@pytest.mark.usefixtures("serving_settings")
def test_fitted_model_to_approved_monitored_deployment(page, browser, live_server, login, shot, celery_worker,
                                                       celery_beat, project_with_roles, tmp_path):
    from apps.monitoring.models import MonitorSettings
    from apps.registry import services
    from tests.registry import factories as f

    project, users = project_with_roles
    ds, reviewer, analyst = users["data_scientist"], users["reviewer"], users["analyst"]
    # the notebook's side: a fitted model, its holdout, and the registered model's contract
    X, y, names = f.make_classification_frame(n=400)
    artifact = tmp_path / "churn.skops"
    artifact.write_bytes(f.skops_bytes(f.make_logreg(X, y)))
    holdout = tmp_path / "holdout.csv"
    holdout.write_bytes(f.table_csv_bytes(X, y))
    services.registered_model_create(project=project, actor=ds, name="churn", task="binary_classification",
                                     input_contract=f.contract_for(names))
    started = time.monotonic()
    timings = {}

    # 1. the data scientist uploads the fitted model with its holdout; the worker validates it
    login(page, ds)
    page.goto(f"{live_server.url}/projects/{project.slug}/models/churn/")
    page.get_by_role("link", name="Upload version").click()
    page.set_input_files("#id_artifact", str(artifact))
    page.set_input_files("#id_holdout", str(holdout))
    page.get_by_role("button", name="Upload and validate").click()
    page.wait_for_url("**/models/churn/v1/")
    expect(page.locator("#version-badge")).to_have_text("Ready", timeout=120_000)
    expect(page.locator("#metrics")).to_contain_text("roc_auc")
    timings["uploaded and validated"] = time.monotonic() - started

    # 2. … deploys it paused (a first version goes live through review) and requests its promotion
    page.goto(f"{live_server.url}/projects/{project.slug}/deployments/new")
    page.select_option("#id_version", label="churn v1")
    page.fill("#id_slug", "churn-api")
    page.select_option("#id_owner", label=ds.username)
    page.uncheck("#id_go_live")
    page.get_by_role("button", name="Deploy").click()
    expect(page).to_have_url(re.compile(r"/deployments/churn-api/$"))
    expect(page.locator("#deployment-status")).to_have_text("Paused")
    page.get_by_role("link", name="Request promotion").click()
    page.fill("#id_justification", "First release: holdout ROC AUC above the project's bar.")
    page.get_by_role("button", name="Open the request").click()
    expect(page).to_have_url(re.compile(r"/promotions/\d+/$"))
    expect(page.locator("#request-status")).to_have_text("Open")
    expect(page.locator("#review-panel")).to_contain_text("you cannot review it")
    shot(page, "reviewer-walk-request-opened")
    timings["promotion requested"] = time.monotonic() - started

    # 3. the reviewer: inbox → the request → its evidence → approve → live
    rctx = browser.new_context(viewport={"width": 1280, "height": 860})
    rpage = rctx.new_page()
    login(rpage, reviewer)
    rpage.goto(f"{live_server.url}/promotions/inbox")
    row = rpage.locator("#promotion-requests tbody tr", has_text="churn-api")
    expect(row).to_contain_text("churn v1 (first version: goes live when approved)")
    expect(row).to_contain_text(ds.username)
    shot(rpage, "reviewer-inbox")
    row.get_by_role("link").click()
    expect(rpage).to_have_url(re.compile(r"/promotions/\d+/$"))
    expect(rpage.locator("#gates")).to_contain_text("First version of this deployment")
    expect(rpage.locator("#gates")).not_to_contain_text("fail")
    expect(rpage.locator(".deploy-head")).to_contain_text("first version of this deployment: goes live when approved")
    expect(rpage.locator("#offline-metrics")).to_contain_text("roc_auc")
    expect(rpage.locator("#offline-metrics thead")).to_have_text("MetricCandidate v1")
    expect(rpage.locator(".promo-layout")).to_contain_text("no production traffic to shadow")
    expect(rpage.locator(".promo-layout")).to_contain_text("sha256 ")
    expect(rpage.locator("#review-form")).to_be_visible()
    shot(rpage, "reviewer-evidence")
    rpage.get_by_label("Approve").check()
    rpage.fill("#id_comment", "Holdout metrics and lineage checked.")
    rpage.get_by_role("button", name="Submit review").click()
    expect(rpage.locator("#request-status")).to_have_text("Approved and promoted")
    shot(rpage, "reviewer-approved")
    rpage.goto(f"{live_server.url}/projects/{project.slug}/deployments/churn-api/")
    expect(rpage.locator("#deployment-status")).to_have_text("Live")
    rctx.close()
    timings["approved and live"] = time.monotonic() - started

    # 4. the analyst opens the dashboard: empty, saying when it fills; calibration fitted at go-live
    wait_for(lambda: MonitorSettings.objects.filter(deployment__slug="churn-api").exclude(calibration_source="")
             .exists(), message="the deploy-time calibration")
    actx = browser.new_context(viewport={"width": 1280, "height": 860})
    apage = actx.new_page()
    login(apage, analyst)
    dashboard = f"{live_server.url}/projects/{project.slug}/monitoring/churn-api/"
    apage.goto(dashboard)
    expect(apage.locator("#dashboard-body .empty")).to_contain_text("within a minute of the first predictions")
    expect(apage.locator("#monitoring-config")).to_contain_text("v1's labelled holdout (400 rows)")
    expect(apage.locator("#monitoring-config")).to_contain_text("every 1000 predictions")
    apage.evaluate("window.__sameDocument = true")
    shot(apage, "analyst-first-hour-empty")

    # 5. the data scientist creates the service's key; the service sends its first predictions
    page.goto(f"{live_server.url}/projects/{project.slug}/deployments/churn-api/")
    page.wait_for_load_state("load")
    page.fill("#id_key_name", "scoring-service")
    page.get_by_role("button", name="Create API key").click()
    key = page.locator("#new-key").inner_text().strip()
    rows = [{n: float(v) for n, v in r.items()} for r in X[names].head(150).to_dict("records")]
    first_prediction = time.monotonic()
    for i in range(0, 150, 50):
        answer = _predict(f"{live_server.url}/api/v1/deployments/churn-api/predict", key, rows[i:i + 50])
        assert len(answer["predictions"]) == 50 and answer["model_version"]["version"] == "v1", answer

    # 6. the dashboard fills by itself within a minute: no "Check now", no reload
    expect(apage.locator("#dashboard-body [data-figure='fig-heatmap'] .main-svg").first).to_be_visible(
        timeout=60_000)
    filled = time.monotonic()
    assert filled - first_prediction < 60
    assert apage.evaluate("window.__sameDocument") is True
    expect(apage.locator("#dashboard-body")).to_contain_text("150 predictions")
    expect(apage.locator("#dashboard-body .badge", has_text="partial")).to_be_visible()
    estimate = apage.locator("#dashboard-body .stat").nth(3).inner_text()
    assert re.match(r"0\.\d{3} / –", estimate), estimate  # estimated accuracy before any label arrived
    shot(apage, "analyst-first-hour-filled")
    actx.close()
    timings["first predictions → dashboard filled"] = filled - first_prediction
    timings["total"] = filled - started

    ARTIFACTS_DIR.mkdir(exist_ok=True)
    (ARTIFACTS_DIR / "first-hour-walk.json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()},
                                                                   indent=2))
    print("first-hour walk:", {k: round(v, 1) for k, v in timings.items()})

"""A data scientist's first model, end to end over HTTP (real server, real worker): a Pipeline with a
OneHotEncoder on two text columns and a scaler on numeric columns whose names have spaces
("Monthly Spend ($)"), registered with ``"input_contract": "infer"`` and a holdout, deployed, called with
strings — predictions equal scikit-learn's in-process; an unknown category, a wrong type and a missing
value are 422s naming feature and row; the drift check treats the text features as categories
(chi-square, Jensen–Shannon, unseen-category rate). The form part runs in a real browser."""

import io
import re
import time

import numpy as np
import pandas as pd
import pytest
import requests
from playwright.sync_api import expect

from tests.deployments.factories import churn_frame, churn_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def skops_bytes(model) -> bytes:
    import skops.io as sio

    return sio.dumps(model)


@pytest.fixture
def serving_settings(settings, tmp_path):
    from apps.deployments import logpipe, serving

    settings.SERVING_SPOOL_DIR = tmp_path / "spool"
    settings.SERVING_DRAIN_IN_PROCESS = True
    settings.SERVING_DRAIN_INTERVAL = 0.5
    settings.SERVING_STATE_TTL = 0.2
    logpipe.flush_own_segment()
    logpipe._writer = None
    serving.CACHE.clear()
    yield
    logpipe.flush_own_segment()
    logpipe._writer = None
    serving.CACHE.clear()


def _wait_version(base, headers, model, number, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = requests.get(f"{base}/models/{model}/versions/{number}", headers=headers, timeout=10).json()
        if v["status"] != "validating":
            return v
        time.sleep(0.5)
    raise AssertionError("validation did not finish")


def test_mixed_type_pipeline_inferred_deployed_and_served_over_http(live_server, celery_worker, project_with_roles,
                                                                   serving_settings):
    from apps.monitoring.models import FeatureWindowStat
    from apps.projects.services import api_token_create

    project, users = project_with_roles
    owner = users["owner"]
    token = api_token_create(user=owner, name="notebook")[1]
    H = {"Authorization": f"Bearer {token}"}
    base = f"{live_server.url}/api/v1/projects/{project.slug}"
    X, y = churn_frame()
    pipe = churn_pipeline(X, y)

    r = requests.post(f"{base}/models", json={"name": "churn", "task": "binary_classification",
                                              "input_contract": "infer"}, headers=H, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["input_contract"] == [] and r.json()["contract_pending"] is True
    holdout = X.assign(target=y).to_csv(index=False).encode()
    r = requests.post(f"{base}/models/churn/versions", headers={**H, "Idempotency-Key": "churn-1"},
                      files={"artifact": ("churn.skops", skops_bytes(pipe)), "holdout": ("holdout.csv", holdout)},
                      timeout=30)
    assert r.status_code == 202, r.text
    v = _wait_version(base, H, "churn", 1)
    assert v["status"] == "ready", v["status_reason"]
    assert v["serving_format"] == "onnx" and v["validation_report"]["onnx"]["verified"] is True

    contract = requests.get(f"{base}/models/churn", headers=H, timeout=10).json()["input_contract"]
    assert [c["name"] for c in contract] == list(X.columns)
    by = {c["name"]: c for c in contract}
    assert by["country"]["type"] == "string" and by["country"]["categories"] == ["DE", "ES", "FR", "US"]
    assert by["country"]["unknown"] == "refuse" and by["plan"]["type"] == "string"
    assert by["Monthly Spend ($)"]["type"] == "float" and by["tenure months"]["type"] == "int"

    r = requests.post(f"{live_server.url}/api/v1/projects/{project.slug}/deployments", headers=H, timeout=30,
                      json={"version_id": v["id"], "slug": "churn-api", "owner": owner.username,
                            "override_reason": "first version of a new model"})
    assert r.status_code == 201, r.text
    key = requests.post(f"{base}/deployments/churn-api/keys", headers=H, json={"name": "app"},
                        timeout=10).json()["key"]
    url = f"{live_server.url}/api/v1/deployments/churn-api/predict"
    K = {"Authorization": f"Bearer {key}"}

    rows = X.head(40)
    instances = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows.to_dict("records")]
    r = requests.post(url, json={"instances": instances}, headers=K, timeout=30)
    assert r.status_code == 200, r.text
    answers = r.json()["predictions"]
    expected_labels = pipe.predict(rows)
    expected_proba = pipe.predict_proba(rows)
    assert [a["prediction"] for a in answers] == list(expected_labels)
    got = np.array([[a["probabilities"][c] for c in pipe.classes_] for a in answers])
    np.testing.assert_allclose(got, expected_proba, atol=1e-5)
    for single in instances[:5]:  # one row at a time, as an app calls it
        one = requests.post(url, json={"instances": [single]}, headers=K, timeout=10).json()["predictions"][0]
        assert one["prediction"] == pipe.predict(pd.DataFrame([single]))[0]

    good = instances[0]
    for bad, field, needle in [
        ({**good, "country": "BR"}, "instances[1].country", "is not a known category"),
        ({**good, "Monthly Spend ($)": "42.5"}, "instances[1].Monthly Spend ($)", "must be a number"),
        ({**good, "plan": 3}, "instances[1].plan", "must be a string"),
        ({**good, "tenure months": None}, "instances[1].tenure months", "null is not allowed"),
    ]:
        r = requests.post(url, json={"instances": [good, bad]}, headers=K, timeout=10)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == field and needle in r.json()["detail"], r.text

    # traffic that drifted on a text feature: far more US and team than in the holdout
    rng = np.random.default_rng(7)
    drifted = [{**inst, "country": "US", "plan": str(rng.choice(["team", "pro"]))} for inst in instances]
    for start in range(0, 40, 10):
        assert requests.post(url, json={"instances": drifted[start:start + 10]}, headers=K,
                             timeout=10).status_code == 200
    from apps.deployments.models import PredictionLog

    deadline = time.monotonic() + 30
    while PredictionLog.objects.filter(deployment__slug="churn-api").count() < 85 and time.monotonic() < deadline:
        time.sleep(0.3)
    r = requests.post(f"{live_server.url}/api/v1/deployments/churn-api/monitoring/checks", headers=H,
                      json={"minutes": 60}, timeout=10)
    assert r.status_code == 202, r.text
    from tests.conftest import wait_for_job

    job = wait_for_job(r.json()["job_id"], timeout=120)
    assert job.status == "succeeded", job.error
    stats = {s.feature: s for s in FeatureWindowStat.objects.filter(window_id=job.result["window_id"])}
    assert stats["country"].kind == "categorical" and "chi2_pvalue" in stats["country"].stats
    assert stats["plan"].kind == "categorical" and "js_distance" in stats["plan"].stats
    assert stats["country"].drifted and stats["country"].stats["chi2_pvalue"] < 0.05
    assert stats["Monthly Spend ($)"].kind == "numeric" and "ks_pvalue" in stats["Monthly Spend ($)"].stats


def test_infer_contract_through_the_forms(page, live_server, login, shot, celery_worker, project_with_roles,
                                          tmp_path):
    project, users = project_with_roles
    ds = users["data_scientist"]
    X, y = churn_frame(n=200)
    pipe = churn_pipeline(X, y)
    (tmp_path / "churn.skops").write_bytes(skops_bytes(pipe))
    (tmp_path / "holdout.csv").write_bytes(X.assign(target=y).to_csv(index=False).encode())

    login(page, ds)
    page.goto(f"{live_server.url}/projects/{project.slug}/models/new/")
    page.fill("#id_name", "churn")
    page.select_option("#id_task", "binary_classification")
    page.check("#id_infer_contract")
    page.get_by_role("button", name="Create model").click()
    expect(page.locator("#contract-pending")).to_contain_text("Contract to be inferred")
    page.get_by_role("link", name="Upload version").first.click()
    expect(page.locator("#contract-pending")).to_be_visible()
    page.set_input_files("#id_artifact", str(tmp_path / "churn.skops"))
    expect(page.locator("#contract-preview-empty")).to_be_visible()
    page.set_input_files("#id_holdout", str(tmp_path / "holdout.csv"))
    # the htmx preview: the holdout's columns and dtypes, its target left out (only the data file is read)
    preview = page.locator("#contract-preview table")
    expect(preview).to_be_visible()
    rows = page.locator("#contract-preview tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_contain_text("country")
    expect(rows.nth(0)).to_contain_text("string")
    expect(rows.nth(0)).to_contain_text("DE, FR, US, ES")
    expect(rows.nth(1)).to_contain_text("Monthly Spend ($)")
    expect(rows.nth(1)).to_contain_text("float")
    expect(rows.nth(3)).to_contain_text("tenure months")
    expect(rows.nth(3)).to_contain_text("int")
    expect(preview).not_to_contain_text("churned")
    page.locator("#contract-preview").scroll_into_view_if_needed()
    shot(page, "registry-upload-infer-contract")
    # a wrong target column name is named before anything is uploaded
    page.fill("#id_holdout_target", "label")
    page.locator("#id_holdout_target").blur()
    expect(page.locator("#contract-preview")).to_contain_text("has no target column 'label'")
    expect(rows).to_have_count(5)
    page.fill("#id_holdout_target", "target")
    page.locator("#id_holdout_target").blur()
    expect(rows).to_have_count(4)
    page.get_by_role("button", name="Upload and validate").click()
    expect(page).to_have_url(re.compile(r"/models/churn/v1/$"))
    from apps.registry.models import ModelVersion
    from tests.conftest import wait_for

    wait_for(lambda: ModelVersion.objects.get(model__name="churn").status != "validating", timeout=120,
             message="validation")
    page.goto(f"{live_server.url}/projects/{project.slug}/models/churn/v1/")
    expect(page.locator("#inferred-contract")).to_contain_text("Monthly Spend ($):float")
    expect(page.locator("#inferred-contract")).to_contain_text("country:string (4 categories, unknown refuse)")
    card = page.locator("#inferred-contract-card table")
    expect(card).to_contain_text("Monthly Spend ($)")
    expect(card.locator("tbody tr").nth(0)).to_contain_text("DE, ES, FR, US")
    expect(card.locator("tbody tr").nth(0)).to_contain_text("refused (422)")
    shot(page, "registry-version-inferred-contract")
    page.goto(f"{live_server.url}/projects/{project.slug}/models/churn/")
    expect(page.locator("#contract table")).to_contain_text("tenure months")
    expect(page.locator("#contract table")).to_contain_text("refused (422)")


def test_declared_contract_contradicting_the_model_is_refused_naming_the_differences(live_server, celery_worker,
                                                                                    project_with_roles):
    from apps.projects.services import api_token_create

    project, users = project_with_roles
    H = {"Authorization": f"Bearer {api_token_create(user=users['data_scientist'], name='nb')[1]}"}
    base = f"{live_server.url}/api/v1/projects/{project.slug}"
    X, y = churn_frame(n=200)
    contract = [{"name": "country", "type": "float"}, {"name": "Monthly Spend ($)", "type": "float"},
                {"name": "plan", "type": "string"}, {"name": "tenure months", "type": "int"}]
    r = requests.post(f"{base}/models", json={"name": "churn", "task": "binary_classification",
                                              "input_contract": contract}, headers=H, timeout=10)
    assert r.status_code == 201, r.text
    buf = io.BytesIO(X.assign(target=y).to_csv(index=False).encode())
    r = requests.post(f"{base}/models/churn/versions", headers=H, timeout=30,
                      files={"artifact": ("m.skops", skops_bytes(churn_pipeline(X, y))), "holdout": ("h.csv", buf)})
    v = _wait_version(base, H, "churn", 1)
    assert v["status"] == "rejected"
    assert "'country' is declared float but the model has string (OneHotEncoder categories)" in v["status_reason"]

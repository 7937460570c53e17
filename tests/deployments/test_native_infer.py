"""Native XGBoost (JSON, UBJSON) and LightGBM (text) files registered with ``"input_contract": "infer"``
through the API, validated by a real Celery worker: the contract is read from the file and the holdout
(names with spaces, an int column), the version is deployed and the prediction endpoint answers exactly
what the library itself predicts."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import wait_for_job
from tests.registry import factories as f

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

NAMES = ["mean radius", "Monthly Spend ($)", "tenure months", "score"]
CASES = [("xgboost", "classifier", "json"), ("xgboost", "regressor", "ubjson"),
         ("lightgbm", "classifier", "text"), ("lightgbm", "regressor", "text")]


def _frame(kind: str):
    make = f.make_classification_frame if kind == "classifier" else f.make_regression_frame
    X, y, _ = make(n=300, seed=3)
    X.columns = NAMES
    X["tenure months"] = (X["tenure months"] * 10).round().astype("int64")  # an int column, typed int
    return X, y


@pytest.fixture
def serving(settings, tmp_path):
    from apps.deployments import logpipe, serving

    settings.SERVING_SPOOL_DIR = tmp_path / "spool"
    logpipe._writer = None
    serving.CACHE.clear()
    yield
    logpipe._writer = None
    serving.CACHE.clear()


@pytest.mark.parametrize("library, kind, encoding", CASES)
def test_native_file_with_an_inferred_contract_is_deployed_and_answers_like_the_library(
        celery_worker, client, project, users, serving, library, kind, encoding):
    from apps.projects.services import api_token_create

    owner = users["owner"]
    H = {"Authorization": f"Bearer {api_token_create(user=owner, name='nb')[1]}"}
    base = f"/api/v1/projects/{project.slug}"
    X, y = _frame(kind)
    model = f.make_booster(library, kind, X, y)
    task = "binary_classification" if kind == "classifier" else "regression"
    r = client.post(f"{base}/models", json.dumps({"name": "booster", "task": task, "input_contract": "infer"}),
                    content_type="application/json", headers=H)
    assert r.status_code == 201, r.content
    r = client.post(f"{base}/models/booster/versions", headers=H, data={
        "artifact": f.upload_file(f.native_bytes(model, encoding), f"model.{encoding}"),
        "holdout": f.upload_file(X.assign(target=y).to_csv(index=False).encode(), "holdout.csv")})
    assert r.status_code == 202, r.content
    v = r.json()
    job = wait_for_job(v["job_id"], timeout=240)
    assert job.status == "succeeded", job.error
    v = client.get(f"{base}/models/booster/versions/1", headers=H).json()
    assert v["status"] == "ready" and v["artifact_format"] == library, v["status_reason"]

    contract = client.get(f"{base}/models/booster", headers=H).json()["input_contract"]
    assert [c["name"] for c in contract] == NAMES
    assert [c["type"] for c in contract] == ["float", "float", "int", "float"]
    assert v["validation_report"]["contract"]["inferred"] is True

    r = client.post(f"{base}/deployments", json.dumps({"version_id": v["id"], "slug": f"{library}-{kind}",
                                                       "owner": owner.username,
                                                       "override_reason": "first version of a new model"}),
                    content_type="application/json", headers=H)
    assert r.status_code == 201, r.content
    key = client.post(f"{base}/deployments/{library}-{kind}/keys", json.dumps({"name": "app"}),
                      content_type="application/json", headers=H).json()["key"]
    rows = X.head(40)
    instances = [{k: (val.item() if hasattr(val, "item") else val) for k, val in row.items()}
                 for row in rows.to_dict("records")]
    r = client.post(f"/api/v1/deployments/{library}-{kind}/predict", json.dumps({"instances": instances}),
                    content_type="application/json", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.content
    answers = r.json()["predictions"]
    frame = pd.DataFrame(instances, columns=NAMES)
    # ONNX trees compute in float32: within the registry's stated tolerance; the labels are the library's
    if kind == "classifier":
        assert [a["prediction"] for a in answers] == [int(p) for p in model.predict(frame)]
        got = np.array([[a["probabilities"]["0"], a["probabilities"]["1"]] for a in answers])
        np.testing.assert_allclose(got, model.predict_proba(frame), atol=1e-3)
    else:
        want = model.predict(frame)
        np.testing.assert_allclose([a["prediction"] for a in answers], want, atol=1e-3 * (1 + np.abs(want).max()))
    assert v["serving_format"] in ("onnx", library)
    bad = client.post(f"/api/v1/deployments/{library}-{kind}/predict",
                      json.dumps({"instances": [{**instances[0], "tenure months": 2.5}]}),
                      content_type="application/json", headers={"Authorization": f"Bearer {key}"})
    assert bad.status_code == 422 and "tenure months" in bad.json()["detail"]

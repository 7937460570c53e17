"""Contracts read from the artifacts, through the registry's validation (run in-process, as the worker does)."""

import numpy as np
import pandas as pd
import pytest

from apps.projects.models import AuditEvent
from apps.registry import services
from apps.registry.models import VersionStatus
from tests.deployments.factories import churn_frame, churn_pipeline
from tests.registry import factories as f

pytestmark = pytest.mark.django_db


def _upload(model, actor, estimator_bytes, holdout: pd.DataFrame | None = None, name="m.skops"):
    holdout_file = f.upload_file(holdout.to_csv(index=False).encode(), "holdout.csv") if holdout is not None else None
    version = services.model_version_upload(model=model, actor=actor, artifact=f.upload_file(estimator_bytes, name),
                                            holdout=holdout_file)
    return f.run_validation_now(version)


def test_infer_stores_the_contract_read_from_the_pipeline_and_the_holdout(project, users):
    ds = users["data_scientist"]
    X, y = churn_frame(n=200)
    model = services.registered_model_create(project=project, actor=ds, name="churn", task="binary_classification",
                                             input_contract="infer")
    assert model.input_contract == []
    v = _upload(model, ds, f.skops_bytes(churn_pipeline(X, y)), X.assign(target=y))
    assert v.status == VersionStatus.READY, v.status_reason
    model.refresh_from_db()
    assert [(c["name"], c["type"]) for c in model.input_contract] == [
        ("country", "string"), ("Monthly Spend ($)", "float"), ("plan", "string"), ("tenure months", "int")]
    assert v.validation_report["contract"]["inferred"] is True
    assert v.serving_format == "onnx" and v.validation_report["onnx"]["verified"]
    assert v.reference_profile["features"]["country"]["kind"] == "categorical"
    assert v.reference_profile["features"]["country"]["type"] == "string"
    assert AuditEvent.objects.filter(verb="model.contract_infer").count() == 1

    # a later version is checked against the stored contract: other columns are refused naming them
    X2 = X.rename(columns={"plan": "tier"})
    v2 = _upload(model, ds, f.skops_bytes(churn_pipeline_named(X2, y)), X2.assign(target=y))
    assert v2.status == VersionStatus.REJECTED
    assert "missing from the contract: tier" in v2.status_reason and "plan" in v2.status_reason


def churn_pipeline_named(X, y):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer([("t", OneHotEncoder(handle_unknown="ignore"), ["country", "tier"]),
                             ("n", StandardScaler(), ["Monthly Spend ($)", "tenure months"])])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=300))]).fit(X, y)


def test_infer_needs_names_or_data_and_is_refused_for_onnx_uploads(project, users):
    ds = users["data_scientist"]
    X, y, names = f.make_classification_frame()
    est = f.make_logreg(X.to_numpy(), y)  # fit on an array: no feature names
    model = services.registered_model_create(project=project, actor=ds, name="bare", task="binary_classification",
                                             input_contract="infer")
    v = _upload(model, ds, f.skops_bytes(est))
    assert v.status == VersionStatus.REJECTED and "fit it on a pandas DataFrame" in v.status_reason
    v = _upload(model, ds, f.onnx_bytes(est, 4), name="m.onnx")
    assert v.status == VersionStatus.REJECTED and "cannot be inferred from an ONNX upload" in v.status_reason
    # with a holdout the data file's columns give the names (the model takes as many)
    v = _upload(model, ds, f.skops_bytes(est), X.assign(target=y))
    assert v.status == VersionStatus.READY, v.status_reason
    model.refresh_from_db()
    assert [c["name"] for c in model.input_contract] == names


def test_a_declared_type_contradicting_the_data_file_is_refused(project, users):
    ds = users["data_scientist"]
    X, y, names = f.make_classification_frame()
    est = f.make_logreg(X.to_numpy(), y)
    holdout = X.assign(f1=np.where(X["f1"] > 0, "high", "low"), target=y)
    model = services.registered_model_create(project=project, actor=ds, name="typed", task="binary_classification",
                                             input_contract=f.contract_for(names))
    v = _upload(model, ds, f.skops_bytes(est), holdout)
    assert v.status == VersionStatus.REJECTED
    assert "Column 'f1' is declared float but holds text: 'low' in row 1" in v.status_reason


def test_an_int_feature_declared_categorical_is_profiled_as_categories(project, users):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    ds = users["data_scientist"]
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"region": rng.integers(1, 5, 300), "x": rng.normal(size=300)})
    y = (X["x"] + (X["region"] == 2) > 0.3).astype(int)
    pipe = Pipeline([("pre", ColumnTransformer([("r", OneHotEncoder(), ["region"])], remainder="passthrough")),
                     ("clf", LogisticRegression())]).fit(X, y)
    model = services.registered_model_create(project=project, actor=ds, name="regions", task="binary_classification",
                                             input_contract="infer")
    v = _upload(model, ds, f.skops_bytes(pipe), X.assign(target=y))
    assert v.status == VersionStatus.READY, v.status_reason
    model.refresh_from_db()
    region = model.input_contract[0]
    assert region["type"] == "int" and region["categorical"] is True and region["categories"] == [1, 2, 3, 4]
    assert v.reference_profile["features"]["region"]["kind"] == "categorical"
    assert v.reference_profile["features"]["x"]["kind"] == "numeric"


def test_api_accepts_infer_and_typed_features(project, users, api_client):
    client = api_client(users["data_scientist"])
    r = client.post(f"/api/v1/projects/{project.slug}/models", content_type="application/json",
                    data={"name": "churn", "task": "binary_classification", "input_contract": "infer"})
    assert r.status_code == 201 and r.json()["contract_pending"] is True and r.json()["input_contract"] == []
    typed = [{"name": "country", "type": "string", "categories": ["DE", "FR"], "unknown": "pass"},
             {"name": "Monthly Spend ($)", "type": "float", "nullable": True}]
    r = client.post(f"/api/v1/projects/{project.slug}/models", content_type="application/json",
                    data={"name": "typed", "task": "binary_classification", "input_contract": typed})
    assert r.status_code == 201, r.content
    assert r.json()["input_contract"] == [{**typed[0], "nullable": False}, typed[1]]
    r = client.post(f"/api/v1/projects/{project.slug}/models", content_type="application/json",
                    data={"name": "bad", "task": "binary_classification",
                          "input_contract": [{"name": "a\tb", "type": "float"}]})
    assert r.status_code == 422 and "no control characters" in r.json()["detail"]


def test_api_contract_update(project, users, api_client):
    from tests.deployments.factories import make_ready_mixed_version

    version = make_ready_mixed_version(project=project, actor=users["owner"])
    url = f"/api/v1/projects/{project.slug}/models/{version.model.name}/contract"
    contract = [dict(c) for c in version.model.input_contract]
    contract[2]["unknown"] = "pass"
    r = api_client(users["data_scientist"]).put(url, data={"input_contract": contract}, content_type="application/json")
    assert r.status_code == 200 and r.json()["input_contract"][2]["unknown"] == "pass"
    r = api_client(users["analyst"]).put(url, data={"input_contract": contract}, content_type="application/json")
    assert r.status_code == 403
    r = api_client(users["data_scientist"]).put(url, data={"input_contract": contract[:2]},
                                                content_type="application/json")
    assert r.status_code == 422 and "Only nullable" in r.json()["detail"] and "tenure months" in r.json()["detail"]

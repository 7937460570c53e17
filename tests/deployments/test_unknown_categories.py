"""An unknown category, in the scikit-learn and the ONNX form alike.

What the forms do on their own (checked here with the pipelines): OneHotEncoder(handle_unknown="error") raises
in scikit-learn and fails in onnxruntime; OrdinalEncoder(handle_unknown="error") raises in scikit-learn but the
skl2onnx form answers as if the value were -1; OneHotEncoder(handle_unknown="ignore") answers alike in both.
The registry keeps them consistent: "unknown": "pass" is refused for a feature whose model raises (at
validation and when the contract is edited), and the ONNX form is served only when it treats unseen values as
scikit-learn does."""

import json

import numpy as np
import pytest

from apps.common.errors import InvalidInput
from apps.deployments import serving
from apps.registry import services
from apps.registry.infer import infer_contract
from apps.registry.models import ModelVersion, VersionStatus
from tests.registry import factories as f

from .factories import MIXED_NUMERIC, MIXED_TEXT, churn_frame, deploy

pytestmark = pytest.mark.django_db


def _pipeline(encoder, X, y):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pre = ColumnTransformer([("text", encoder, MIXED_TEXT), ("num", StandardScaler(), MIXED_NUMERIC)])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)


def _register(project, actor, pipe, X, y, contract, name="churn"):
    model = services.registered_model_create(project=project, actor=actor, name=name, task="binary_classification",
                                             input_contract=contract)
    version = services.model_version_upload(
        model=model, actor=actor, artifact=f.upload_file(f.skops_bytes(pipe), "m.skops"),
        holdout=f.upload_file(X.assign(target=y).to_csv(index=False).encode(), "h.csv"))
    return f.run_validation_now(version)


def _contract(pipe, X, **changes):
    contract, _ = infer_contract(pipe, X)
    for c in contract:
        c.update(changes.get(c["name"], {}))
        if c.get("categories") is None:
            c.pop("categories", None)
            c.pop("unknown", None)
    return contract


def _predict(client, slug, key, instance):
    return client.post(f"/api/v1/deployments/{slug}/predict", json.dumps({"instances": [instance]}),
                       content_type="application/json", headers={"Authorization": f"Bearer {key}"})


def _both_forms(client, project, actor, version, instance):
    """The answers of a deployment serving the verified ONNX form, then of one serving the scikit-learn form."""
    assert version.serving_format == "onnx" and version.onnx_verified
    answers = []
    for form in ("onnx", "skops"):
        if form == "skops":
            ModelVersion.objects.filter(pk=version.pk).update(serving_format="skops", onnx_verified=False)
            version.refresh_from_db()
        serving.CACHE.clear()
        dep, key = deploy(project=project, actor=actor, version=version, slug=f"churn-{form}")
        answers.append(_predict(client, dep.slug, key, instance))
    return answers


@pytest.fixture
def data():
    X, y = churn_frame(n=300)
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in X.iloc[0].items()}
    return X, y, {**row, "country": "BR"}


def test_pass_is_refused_at_validation_for_a_feature_whose_encoder_raises(project, users, data):
    from sklearn.preprocessing import OneHotEncoder

    X, y, _ = data
    pipe = _pipeline(OneHotEncoder(handle_unknown="error"), X, y)
    version = _register(project, users["data_scientist"], pipe, X, y, _contract(pipe, X, country={"unknown": "pass"}))
    assert version.status == VersionStatus.REJECTED
    assert "'country' lets unknown categories through" in version.status_reason
    assert "Found unknown categories" in version.status_reason and "'plan'" not in version.status_reason


def test_strict_encoder_refuses_unknown_categories_in_both_forms_and_pass_cannot_be_set_later(client, project, users,
                                                                                              data):
    from sklearn.preprocessing import OneHotEncoder

    X, y, unknown = data
    pipe = _pipeline(OneHotEncoder(handle_unknown="error"), X, y)
    with pytest.raises(ValueError, match="unknown categories"):
        pipe.predict(X.head(1).assign(country="BR"))  # what the model itself does
    owner = users["owner"]
    version = _register(project, owner, pipe, X, y, "infer")
    assert version.status == VersionStatus.READY, version.status_reason
    assert version.validation_report["unknown_categories"]["refused_by_model"] == ["country", "plan"]
    with pytest.raises(InvalidInput, match=r"'country' cannot let unknown categories through .*v1 refuses them"):
        services.registered_model_contract_update(model=version.model, actor=owner,
                                                  input_contract=_contract(pipe, X, country={"unknown": "pass"}))
    from apps.projects.services import api_token_create

    token = api_token_create(user=owner, name="nb")[1]
    resp = client.put(f"/api/v1/projects/{project.slug}/models/churn/contract",
                      json.dumps({"input_contract": _contract(pipe, X, plan={"unknown": "pass"})}),
                      content_type="application/json", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 422 and "'plan' cannot let unknown categories through" in resp.json()["detail"]
    version.model.refresh_from_db()
    assert all(c["unknown"] == "refuse" for c in version.model.input_contract if "categories" in c)
    for resp in _both_forms(client, project, owner, version, unknown):
        assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "instances[0].country"
        assert "is not a known category" in resp.json()["detail"]


def test_encoder_that_ignores_unknowns_answers_alike_in_both_forms_under_pass(client, project, users, data):
    from sklearn.preprocessing import OneHotEncoder

    X, y, unknown = data
    pipe = _pipeline(OneHotEncoder(handle_unknown="ignore"), X, y)
    owner = users["owner"]
    version = _register(project, owner, pipe, X, y, _contract(pipe, X, country={"unknown": "pass"}))
    assert version.status == VersionStatus.READY, version.status_reason
    assert version.validation_report["unknown_categories"] == {"refused_by_model": [],
                                                                "answered_by_model": ["country", "plan"]}
    import pandas as pd

    want = pipe.predict_proba(pd.DataFrame([unknown]))[0]
    for resp in _both_forms(client, project, owner, version, unknown):
        assert resp.status_code == 200, resp.content
        got = resp.json()["predictions"][0]["probabilities"]
        np.testing.assert_allclose([got[str(c)] for c in pipe.classes_], want, atol=1e-5)


def test_onnx_form_that_answers_where_scikit_learn_raises_is_not_served(client, project, users, data):
    """OrdinalEncoder(handle_unknown="error") on a text feature declared without categories: every value reaches
    the model; scikit-learn raises on an unseen one, skl2onnx's form would answer silently. The scikit-learn
    form is served, so an unseen value is a 422 from the model, as in the notebook."""
    from sklearn.preprocessing import OrdinalEncoder

    X, y, unknown = data
    pipe = _pipeline(OrdinalEncoder(), X, y)
    owner = users["owner"]
    contract = _contract(pipe, X, country={"categories": None})
    assert "categories" not in contract[0] and contract[0]["name"] == "country"
    version = _register(project, owner, pipe, X, y, contract)
    assert version.status == VersionStatus.READY, version.status_reason
    onnx = version.validation_report["onnx"]
    assert onnx["converted"] and onnx["label_agreement"] == 1.0 and not onnx["verified"]
    assert "'country'" in onnx["unknown_categories"] and version.serving_format == "skops"
    dep, key = deploy(project=project, actor=owner, version=version, slug="churn-ordinal")
    serving.CACHE.clear()
    resp = _predict(client, dep.slug, key, unknown)
    assert resp.status_code == 422 and "Found unknown categories" in resp.json()["detail"]
    assert _predict(client, dep.slug, key, {**unknown, "country": "DE"}).status_code == 200

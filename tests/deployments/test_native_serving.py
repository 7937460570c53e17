"""XGBoost/LightGBM versions through the prediction endpoint, in both forms serving may load: the verified
ONNX form and the native booster (when no ONNX form matched)."""

import json

import numpy as np
import pytest

from apps.registry.models import ModelVersion
from tests.registry import factories as f

from .factories import deploy


@pytest.mark.django_db
@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("form", ["onnx", "native"])
def test_booster_deployment_answers_like_the_library(client, project, users, library, form):
    X, y, names = f.make_classification_frame(n=200)
    model = f.make_booster(library, "classifier", X, y)
    version = f.register_ready_version(project, users["owner"], None, X, y, names, "binary_classification",
                                       artifact=f.native_bytes(model))
    assert version.serving_format == "onnx"
    if form == "native":
        ModelVersion.objects.filter(pk=version.pk).update(serving_format=library, onnx_verified=False)
    dep, key = deploy(project=project, actor=users["owner"], version=version, slug=f"{library}-{form}")
    rows = X.head(20).to_dict(orient="records")
    resp = client.post(f"/api/v1/deployments/{dep.slug}/predict", json.dumps({"instances": rows}),
                       content_type="application/json", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.content
    preds = [p["prediction"] for p in resp.json()["predictions"]]
    proba = np.array([[p["probabilities"]["0"], p["probabilities"]["1"]] for p in resp.json()["predictions"]])
    assert preds == list(model.predict(X.head(20)))
    np.testing.assert_allclose(proba, model.predict_proba(X.head(20)), atol=1e-6 if form == "native" else 1e-3)
    bad = client.post(f"/api/v1/deployments/{dep.slug}/predict", json.dumps({"instances": [{**rows[0], "f1": "x"}]}),
                      content_type="application/json", headers={"Authorization": f"Bearer {key}"})
    assert bad.status_code == 422 and "f1" in bad.json()["detail"]

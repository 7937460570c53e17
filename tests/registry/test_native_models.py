"""XGBoost and LightGBM in their native formats: accepted (sandboxed load, checks, metrics, profile),
predictions equal the library's own, and the onnxmltools ONNX form is served when it matches."""

import numpy as np
import pytest

from apps.common.errors import Conflict
from apps.registry.loading import load_estimator, load_predictor
from apps.registry.models import ModelVersion, VersionStatus
from tests.registry import factories as f

pytestmark = pytest.mark.django_db

CASES = [
    ("xgboost", "classifier", "json"),
    ("xgboost", "classifier", "ubjson"),
    ("xgboost", "regressor", "json"),
    ("lightgbm", "classifier", "text"),
    ("lightgbm", "regressor", "text"),
]


def _library_answers(model, kind, X):
    if kind == "classifier":
        return model.predict(X), model.predict_proba(X)
    return model.predict(X), None


@pytest.mark.parametrize("library, kind, encoding", CASES)
def test_native_model_is_validated_and_served_with_the_librarys_answers(project, users, library, kind, encoding):
    if kind == "classifier":
        X, y, names = f.make_classification_frame(n=300)
        task = "binary_classification"
    else:
        X, y, names = f.make_regression_frame(n=300)
        task = "regression"
    model = f.make_booster(library, kind, X, y)
    version = f.register_ready_version(project, users["data_scientist"], None, X, y, names, task,
                                       artifact=f.native_bytes(model, encoding))
    assert version.artifact_format == library
    assert version.framework.startswith(library)
    report = version.validation_report
    assert report["load"]["booster"]["n_features"] == 4 and report["signature"]["source"] in (
        "feature_names", "num_feature")
    # metrics on the holdout, a reference profile for monitoring
    key = "roc_auc" if kind == "classifier" else "r2"
    assert version.metrics[key] > 0.7, version.metrics
    assert version.reference_profile["n_rows"] == len(X)
    # the ONNX form (onnxmltools) matched within the stated tolerance, so it is what serving loads
    assert report["onnx"]["converted"] and report["onnx"]["verified"], report["onnx"]
    assert version.serving_format == "onnx" and version.onnx_verified
    preds, proba = load_predictor(version).predict(X.to_numpy())
    want, want_proba = _library_answers(model, kind, X)
    if kind == "classifier":
        assert np.mean(preds == want) >= 0.99 and np.abs(proba - want_proba).max() < 1e-3
    else:
        assert np.abs(preds - want).max() < 1e-3 * (1 + np.abs(want).max())
    # the native form (as the library re-saved it in the sandbox) gives the library's answers exactly
    ModelVersion.objects.filter(pk=version.pk).update(serving_format=library)
    version.refresh_from_db()
    predictor = load_predictor(version)
    assert predictor.format == library
    preds, proba = predictor.predict(X.to_numpy())
    if kind == "classifier":
        assert list(preds) == list(want)
        np.testing.assert_allclose(proba, want_proba, rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_allclose(preds, want, rtol=1e-6, atol=1e-6)
    # a native booster is not a scikit-learn estimator: retraining here says so instead of failing later
    with pytest.raises(Conflict, match="native"):
        load_estimator(version)


def test_multiclass_xgboost_and_lightgbm_give_one_probability_per_class(project, users):
    X, y, names = f.make_classification_frame(n=300, n_classes=3)
    for library in ("xgboost", "lightgbm"):
        model = f.make_booster(library, "classifier", X, y)
        version = f.register_ready_version(project, users["data_scientist"], None, X, y, names,
                                           "multiclass_classification", model_name=f"multi-{library}",
                                           artifact=f.native_bytes(model))
        assert version.classes == [0, 1, 2] and version.serving_format == "onnx"
        preds, proba = load_predictor(version).predict(X.to_numpy())
        assert proba.shape == (300, 3) and np.mean(preds == model.predict(X)) >= 0.99


def test_native_model_whose_feature_names_differ_from_the_contract_is_rejected_naming_them(project, users):
    from apps.registry import services

    X, y, names = f.make_classification_frame(n=200)
    model = f.make_booster("xgboost", "classifier", X, y)
    rm = services.registered_model_create(project=project, actor=users["data_scientist"], name="renamed",
                                          task="binary_classification",
                                          input_contract=f.contract_for(["f0", "f1", "age", "f3"]))
    version = services.model_version_upload(model=rm, actor=users["data_scientist"],
                                            artifact=f.upload_file(f.native_bytes(model), "model.json"))
    version = f.run_validation_now(version)
    assert version.status == VersionStatus.REJECTED
    assert "f2 ≠ age" in version.status_reason


def test_native_model_of_another_width_is_rejected(project, users):
    from apps.registry import services

    X, y, _ = f.make_classification_frame(n=200)
    model = f.make_booster("lightgbm", "classifier", X.to_numpy(), y)  # no names in the file
    rm = services.registered_model_create(project=project, actor=users["data_scientist"], name="narrow",
                                          task="binary_classification", input_contract=f.contract_for(["a", "b"]))
    version = f.run_validation_now(services.model_version_upload(
        model=rm, actor=users["data_scientist"], artifact=f.upload_file(f.native_bytes(model), "model.txt")))
    assert version.status == VersionStatus.REJECTED
    assert "takes 4 features, the contract declares 2" in version.status_reason


def test_regressor_file_for_a_classification_model_is_rejected(project, users):
    from apps.registry import services

    X, y, names = f.make_regression_frame(n=200)
    model = f.make_booster("xgboost", "regressor", X, y)
    rm = services.registered_model_create(project=project, actor=users["data_scientist"], name="wrongtask",
                                          task="binary_classification", input_contract=f.contract_for(names))
    version = f.run_validation_now(services.model_version_upload(
        model=rm, actor=users["data_scientist"], artifact=f.upload_file(f.native_bytes(model), "model.json")))
    assert version.status == VersionStatus.REJECTED and "regressor" in version.status_reason

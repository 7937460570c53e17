"""XGBoost and LightGBM in their native formats: accepted (sandboxed load, checks, metrics, profile),
predictions equal the library's own, and the onnxmltools ONNX form is served when it matches."""

import json

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
    assert "Input signature mismatch" in version.status_reason
    assert "f2" in version.status_reason and "age" in version.status_reason


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


# --- scikit-learn Pipelines ending in an XGBoost/LightGBM wrapper: the skops path --------------------


def _pipeline(final):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("model", final)])


@pytest.mark.parametrize("library, kind", [("xgboost", "classifier"), ("lightgbm", "classifier"),
                                           ("xgboost", "regressor"), ("lightgbm", "regressor")])
def test_skops_pipeline_ending_in_a_booster_is_accepted_and_answers_like_the_pipeline(project, users, library,
                                                                                       kind):
    import xgboost as xgb  # noqa: F401 - the wrappers are built by the factory
    if kind == "classifier":
        X, y, names = f.make_classification_frame(n=300)
        task = "binary_classification"
    else:
        X, y, names = f.make_regression_frame(n=300)
        task = "regression"
    booster = f.make_booster(library, kind, X.to_numpy(), y)
    pipe = _pipeline(booster).fit(X, y)
    version = f.register_ready_version(project, users["data_scientist"], pipe, X, y, names, task)
    assert version.artifact_format == "skops" and version.framework == "scikit-learn"
    assert version.validation_report["estimator"] == "Pipeline"
    # skl2onnx converts the booster step with onnxmltools' converters; served as ONNX only when it matched
    onnx_report = version.validation_report["onnx"]
    assert onnx_report["converted"], onnx_report
    assert version.serving_format == ("onnx" if onnx_report["verified"] else "skops")
    if library == "lightgbm":
        assert onnx_report["verified"], onnx_report
    preds, _ = load_predictor(version).predict(X.to_numpy())
    want = pipe.predict(X)
    if kind == "classifier":
        assert np.mean(preds == want) >= 0.99
    else:
        assert np.abs(preds - want).max() < 1e-3 * (1 + np.abs(want).max())
    # the scikit-learn form loads with the server's list (retraining can clone it)
    assert type(load_estimator(version).steps[-1][1]).__name__ == type(booster).__name__


def test_lightgbm_pipeline_with_string_labels_keeps_the_labels(project, users):
    X, y, names = f.make_classification_frame(n=300)
    labels = np.where(y == 1, "churn", "stay")
    pipe = _pipeline(f.make_booster("lightgbm", "classifier", X.to_numpy(), labels)).fit(X, labels)
    version = f.register_ready_version(project, users["data_scientist"], pipe, X, labels, names,
                                       "binary_classification")
    assert version.classes == ["churn", "stay"]
    preds, _ = load_predictor(version).predict(X.to_numpy())
    assert np.mean(preds == pipe.predict(X)) >= 0.99


def test_skops_file_with_any_other_xgboost_type_is_refused_naming_it(project, users):
    import xgboost as xgb

    from apps.registry import services

    X, y, names = f.make_classification_frame(n=200)
    model = f.make_booster("xgboost", "classifier", X.to_numpy(), y, callbacks=[xgb.callback.EvaluationMonitor()])
    rm = services.registered_model_create(project=project, actor=users["data_scientist"], name="callback",
                                          task="binary_classification", input_contract=f.contract_for(names))
    version = f.run_validation_now(services.model_version_upload(
        model=rm, actor=users["data_scientist"], artifact=f.upload_file(f.skops_bytes(_pipeline(model)), "m.skops")))
    assert version.status == VersionStatus.REJECTED
    assert "not on the server's allowlist: xgboost.callback.EvaluationMonitor" in version.status_reason


def test_joblib_pipeline_ending_in_xgboost_is_refused_by_the_scan(project, users):
    from apps.registry import services

    X, y, names = f.make_classification_frame(n=200)
    pipe = _pipeline(f.make_booster("xgboost", "classifier", X.to_numpy(), y)).fit(X, y)
    rm = services.registered_model_create(project=project, actor=users["data_scientist"], name="pickled",
                                          task="binary_classification", input_contract=f.contract_for(names))
    version = f.run_validation_now(services.model_version_upload(
        model=rm, actor=users["data_scientist"], artifact=f.upload_file(f.joblib_bytes(pipe), "m.joblib")))
    assert version.status == VersionStatus.REJECTED and version.validation_report["step"] == "scan"
    assert "xgboost.sklearn.XGBClassifier, which is not on the allowlist" in version.status_reason


# --- hostile files through the real upload and validation -------------------------------------------


def test_hostile_booster_files_are_rejected_with_the_reason_and_leave_no_file(project, users):
    import pickle
    import struct

    from apps.common.storage import artifact_store
    from apps.registry import services

    X, y, names = f.make_classification_frame(n=200)
    xgb_model = f.make_booster("xgboost", "classifier", X, y)
    lgb_text = f.native_bytes(f.make_booster("lightgbm", "classifier", X, y))
    ubj = f.native_bytes(xgb_model, "ubjson")
    doc = json.loads(f.native_bytes(xgb_model))
    doc["learner"]["learner_model_param"]["num_feature"] = "1000000000"
    huge = b"{L" + struct.pack(">q", 7) + b"learner[$D#L" + struct.pack(">q", 1 << 40) + b"}"
    cases = [
        (lgb_text + pickle.dumps(xgb_model), "scan", "binary data"),
        (ubj[: len(ubj) // 2], "scan", "UBJSON model"),
        (huge, "scan", "declares 8,796,093,022,208 bytes"),
        (json.dumps(doc).encode(), "load", "declares 1,000,000,000 features"),
        (f.native_bytes(xgb_model)[:-200], "load", "not valid JSON"),
    ]
    rm = services.registered_model_create(project=project, actor=users["data_scientist"], name="hostile",
                                          task="binary_classification", input_contract=f.contract_for(names))
    for data, step, needle in cases:
        version = f.run_validation_now(services.model_version_upload(
            model=rm, actor=users["data_scientist"], artifact=f.upload_file(data, "model.bin")))
        assert version.status == VersionStatus.REJECTED, needle
        assert version.validation_report["step"] == step and needle in version.status_reason, version.status_reason
        assert not artifact_store().exists(version.artifact_key)


"""Registry services with a real database: uploads, validation (run in-process, as the worker does), rejections."""

import os

import numpy as np
import pytest

from apps.common.errors import Conflict, InvalidInput, PayloadTooLarge, PermissionDenied, UnsupportedMediaType
from apps.projects.models import AuditEvent
from apps.registry import services
from apps.registry.loading import load_estimator, load_predictor
from apps.registry.models import VersionStatus
from tests.registry import factories as f
from tests.registry import malicious as bad

pytestmark = pytest.mark.django_db


def _files(root) -> set:
    return {os.path.join(d, n) for d, _, names in os.walk(root) for n in names}


@pytest.fixture
def artifact_root(settings):
    return settings.ARTIFACT_ROOT


@pytest.fixture
def model(project, users):
    _X, _y, names = f.make_classification_frame()
    return services.registered_model_create(project=project, actor=users["data_scientist"], name="churn",
                                            task="binary_classification", input_contract=f.contract_for(names))


def _upload(model, user, data: bytes, name="model.bin", **kw):
    return services.model_version_upload(model=model, actor=user, artifact=f.upload_file(data, name), **kw)


# --- benign: every format of both estimators is accepted and predicts like the original ---------

BENIGN = {
    "skops": lambda est: f.skops_bytes(est),
    "pickle": lambda est: f.pickle_bytes(est, protocol=5),
    "joblib": lambda est: f.joblib_bytes(est, compress=3),
    "onnx": lambda est: f.onnx_bytes(est, 4),
}


@pytest.mark.parametrize("fmt", list(BENIGN))
@pytest.mark.parametrize("make_est", [f.make_logreg, f.make_hgb_pipeline], ids=["logreg", "hgb_pipeline"])
def test_benign_models_are_accepted_and_predict_correctly(project, users, fmt, make_est):
    X, y, names = f.make_classification_frame()
    est = make_est(X, y)
    version = f.register_ready_version(project, users["data_scientist"], est, X, y, names, "binary_classification",
                                       model_name="churn", artifact=BENIGN[fmt](est))
    assert version.status == VersionStatus.READY and version.artifact_format == fmt
    assert version.metrics["roc_auc"] > 0.7 and set(version.metrics) >= {"accuracy", "precision", "recall", "f1", "log_loss"}
    assert len(version.reference_profile["features"]["f0"]["quantiles"]) == 1001
    predictor = load_predictor(version)
    preds, proba = predictor.predict(X.to_numpy())
    expected = est.predict(X)
    assert np.mean(preds == expected) >= 0.99
    assert proba.shape == (len(X), 2)
    assert np.abs(proba - est.predict_proba(X)).max() < 0.25
    if fmt != "onnx":
        assert version.safe_artifact_key.endswith(".skops") or fmt == "skops"
        assert type(load_estimator(version)).__name__ == type(est).__name__


def test_regressor_and_multiclass_versions(project, users):
    Xr, yr, names = f.make_regression_frame()
    reg = f.register_ready_version(project, users["owner"], f.make_ridge(Xr, yr), Xr, yr, names, "regression",
                                   model_name="price")
    assert set(reg.metrics) >= {"mae", "rmse", "r2"} and reg.classes is None and reg.onnx_verified
    assert reg.reference_profile["prediction"]["kind"] == "numeric"
    Xm, ym, names = f.make_classification_frame(n_classes=3)
    multi = f.register_ready_version(project, users["owner"], f.make_logreg(Xm, ym), Xm, ym, names,
                                     "multiclass_classification", model_name="segment")
    assert multi.classes == [0, 1, 2] and "roc_auc" in multi.metrics
    assert multi.reference_profile["prediction"]["kind"] == "categorical"


# --- malicious: rejected, never executed, nothing left behind -----------------------------------

MALICIOUS = {
    "os_system_p0": lambda m: bad.os_system_pickle(m, protocol=0),
    "os_system_p5": lambda m: bad.os_system_pickle(m, protocol=5),
    "builtins_eval": lambda m: bad.eval_pickle(m, protocol=4),
    "subprocess": lambda m: bad.subprocess_pickle(m, protocol=4),
    "pipeline_step": lambda m: bad.pipeline_step_pickle(m, protocol=4),
    "compressed_joblib": lambda m: bad.compressed_joblib(m, compress=3),
    "memo_stack_global": lambda m: bad.memo_stack_global(m),
}


@pytest.mark.parametrize("case", list(MALICIOUS))
def test_malicious_pickles_are_rejected_and_never_run(model, users, tmp_path, artifact_root, case):
    marker = tmp_path / "pwned"
    before = _files(artifact_root)
    version = _upload(model, users["data_scientist"], MALICIOUS[case](marker), name="model.pkl")
    version = f.run_validation_now(version)
    assert version.status == VersionStatus.REJECTED
    assert "not on the allowlist" in version.status_reason
    assert any(name in version.status_reason for name in ("system", "eval", "Popen"))
    assert not marker.exists()
    assert _files(artifact_root) == before  # the rejected artifact was deleted
    assert AuditEvent.objects.filter(verb="model_version.reject", target_id=str(version.pk)).exists()
    with pytest.raises(Conflict):
        load_predictor(version)


# --- bad uploads: a clear error, nothing left behind --------------------------------------------


@pytest.mark.parametrize("data, name, exc, message", [
    (b"", "model.skops", InvalidInput, "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"0" * 100, "model.pkl", UnsupportedMediaType, "Not a recognised model file"),
    (b"hello, this is text", "model.joblib", UnsupportedMediaType, "Not a recognised model file"),
    (b"\x80\x04N.", "../../etc/model.pkl", InvalidInput, "plain file name"),
    (b"\x80\x04N.", "..\\model.pkl", InvalidInput, "plain file name"),
    (b"\x80\x04N.", "model\x00.pkl", InvalidInput, "plain file name"),
])
def test_bad_uploads_are_refused_at_once(model, users, artifact_root, data, name, exc, message):
    before = _files(artifact_root)
    with pytest.raises(exc, match=message):
        # the name is passed explicitly: Django's multipart parser already strips folders from names
        services.model_version_upload(model=model, actor=users["data_scientist"],
                                      artifact=f.upload_file(data, "x.bin"), filename=name)
    assert _files(artifact_root) == before
    assert not model.versions.exists()


def test_oversize_upload_is_refused(model, users, settings, artifact_root):
    settings.UPLOAD_MAX_BYTES = 1000
    before = _files(artifact_root)
    with pytest.raises(PayloadTooLarge, match="limit of 1,000 bytes"):
        _upload(model, users["data_scientist"], b"\x80\x04" + b"N" * 2000, name="big.pkl")
    assert _files(artifact_root) == before


@pytest.mark.parametrize("case", ["truncated", "bomb", "corrupt_onnx", "fake_skops"])
def test_unreadable_artifacts_are_rejected_by_validation(model, users, settings, artifact_root, case):
    settings.REGISTRY_INFLATE_MAX_BYTES = 8 * 1024 * 1024
    good = f.pickle_bytes(f.make_logreg())
    data = {"truncated": good[: len(good) // 2], "bomb": bad.zlib_bomb(32 * 1024 * 1024),
            "corrupt_onnx": b"\x08\x07" + os.urandom(200),
            "fake_skops": b"PK\x03\x04" + b"\x00" * 100}[case]
    before = _files(artifact_root)
    version = f.run_validation_now(_upload(model, users["data_scientist"], data))
    assert version.status == VersionStatus.REJECTED, version.status_reason
    if case == "bomb":
        assert "decompression bomb" in version.status_reason
    assert _files(artifact_root) == before


def test_signature_mismatch_names_missing_and_extra_features(project, users):
    X, y, names = f.make_classification_frame()
    model = services.registered_model_create(
        project=project, actor=users["data_scientist"], name="wrong", task="binary_classification",
        input_contract=f.contract_for(["f0", "f1", "f2", "tenure"]))
    version = f.run_validation_now(_upload(model, users["data_scientist"], f.skops_bytes(f.make_logreg(X, y))))
    assert version.status == VersionStatus.REJECTED
    assert "f3" in version.status_reason and "tenure" in version.status_reason
    assert "Input signature mismatch" in version.status_reason


def test_task_mismatch_is_rejected(project, users):
    Xr, yr, names = f.make_regression_frame()
    model = services.registered_model_create(project=project, actor=users["owner"], name="oops",
                                             task="binary_classification", input_contract=f.contract_for(names))
    version = f.run_validation_now(_upload(model, users["owner"], f.skops_bytes(f.make_ridge(Xr, yr))))
    assert version.status == VersionStatus.REJECTED and "regressor" in version.status_reason


def test_same_bytes_shared_by_a_ready_version_survive_a_rejection(project, users, artifact_root):
    X, y, names = f.make_classification_frame()
    est = f.make_logreg(X, y)
    data = f.skops_bytes(est)
    ready = f.register_ready_version(project, users["owner"], est, X, y, names, "binary_classification",
                                     model_name="shared", artifact=data)
    other = services.registered_model_create(project=project, actor=users["owner"], name="other",
                                             task="binary_classification",
                                             input_contract=f.contract_for(["a", "b", "c", "d"]))
    rejected = f.run_validation_now(_upload(other, users["owner"], data))
    assert rejected.status == VersionStatus.REJECTED
    assert rejected.artifact_sha256 == ready.artifact_sha256
    assert os.path.exists(os.path.join(artifact_root, ready.artifact_key))


def test_permissions_versions_lineage_and_archive(project, users):
    X, y, names = f.make_classification_frame()
    with pytest.raises(PermissionDenied):
        services.registered_model_create(project=project, actor=users["analyst"], name="nope",
                                         task="binary_classification", input_contract=f.contract_for(names))
    v1 = f.register_ready_version(project, users["data_scientist"], f.make_logreg(X, y), X, y, names,
                                  "binary_classification", model_name="lineage", code_ref="abc123",
                                  tags="baseline, lr", uploader_metrics={"auc": 0.9})
    with pytest.raises(PermissionDenied):
        _upload(v1.model, users["analyst"], f.skops_bytes(f.make_logreg(X, y)))
    v2 = f.register_ready_version(project, users["data_scientist"], f.make_hgb_pipeline(X, y), X, y, names,
                                  "binary_classification", model=v1.model, parent_version=1,
                                  training_data=f.upload_file(f.table_parquet_bytes(X, y), "train.parquet"))
    assert (v1.version, v2.version) == (1, 2)
    assert v2.parent_id == v1.pk and v2.training_data_name == "train.parquet" and len(v2.training_data_sha256) == 64
    assert v2.reference_profile["source"] == "training"
    # the rows monitoring learns from (CBPE, DLE, thresholds): the labelled holdout, with the model's outputs
    import pandas as pd

    from apps.common.storage import artifact_store

    rows = v2.reference_profile["rows"]
    assert rows["source"] == "holdout" and rows["labelled"] and not rows["truncated"]
    frame = pd.read_parquet(artifact_store().path(rows["key"]))
    assert len(frame) == rows["n"] and {*names, "__score", "__pred", "__label"} <= set(frame.columns)
    assert v1.tags == ["baseline", "lr"] and v1.uploader_metrics == {"auc": 0.9} and v1.code_ref == "abc123"
    services.model_version_archive(version=v1, actor=users["data_scientist"])
    v1.refresh_from_db()
    assert v1.status == VersionStatus.ARCHIVED
    load_predictor(v1)  # archived versions still load (rollback)
    with pytest.raises(PermissionDenied):
        services.model_version_archive(version=v2, actor=users["reviewer"])
    verbs = set(AuditEvent.objects.filter(project=project).values_list("verb", flat=True))
    assert {"model.create", "model_version.upload", "model_version.ready", "model_version.archive"} <= verbs


def test_loader_process_memory_limit_stops_a_memory_bomb(model, users):
    # bytearray is on the allowlist, so the scan passes; the isolated loader hits its RLIMIT_AS.
    data = b"\x80\x04\x8c\x08builtins\x8c\tbytearray\x93\x8a\x05\x00\x00\x00\x00\x10\x85R."
    version = f.run_validation_now(_upload(model, users["data_scientist"], data))
    assert version.status == VersionStatus.REJECTED
    assert "memory" in version.status_reason


@pytest.mark.django_db
def test_training_data_the_model_cannot_predict_on_rejects_cleanly_naming_the_columns(project, users):
    """A clean holdout passes the smoke test, but the training file (the drift baseline) has missing values
    a LogisticRegression cannot take: a clear rejection naming the columns, not a crash."""
    import numpy as np

    from apps.registry import services as registry_services
    from apps.registry.models import VersionStatus
    from tests.registry.factories import (
        contract_for,
        make_classification_frame,
        make_logreg,
        run_validation_now,
        skops_bytes,
        table_csv_bytes,
        upload_file,
    )

    X, y, names = make_classification_frame()
    est = make_logreg(X, y)
    model = registry_services.registered_model_create(project=project, actor=users["data_scientist"], name="nan-m",
                                                      task="binary_classification", input_contract=contract_for(names))
    dirty = X.copy()
    dirty.loc[::7, "f2"] = np.nan
    version = registry_services.model_version_upload(
        model=model, actor=users["data_scientist"], artifact=upload_file(skops_bytes(est), "m.skops"),
        holdout=upload_file(table_csv_bytes(X, y, feature_names=names), "holdout.csv"),
        training_data=upload_file(table_csv_bytes(dirty, y, feature_names=names), "train.csv"))
    version = run_validation_now(version)
    assert version.status == VersionStatus.REJECTED
    assert "cannot predict" in version.status_reason and "f2" in version.status_reason

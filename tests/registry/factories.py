"""Registry test helpers — other apps' tests import these (keep the names stable).

Tiny trained models and artifact bytes (a few hundred rows, fast):

- ``make_classification_frame(n=300, n_features=4, seed=0, n_classes=2)`` → ``(X: DataFrame, y: ndarray,
  feature_names)``; feature names are ``f0 .. f{n-1}``.
- ``make_regression_frame(n=300, n_features=4, seed=0)`` → same for a regression target.
- ``make_logreg(X=None, y=None)`` → fitted ``LogisticRegression`` (fitted on a DataFrame, so it has
  ``feature_names_in_``).
- ``make_hgb_pipeline(X=None, y=None)`` → fitted ``Pipeline(StandardScaler, HistGradientBoostingClassifier)``.
- ``make_ridge(X=None, y=None)`` → fitted ``Ridge`` regressor.
- ``make_logreg_skops_bytes()`` / ``skops_bytes(est)`` / ``pickle_bytes(est, protocol=5)`` /
  ``joblib_bytes(est, compress=0)`` / ``onnx_bytes(est, n_features)`` → artifact bytes.
- ``contract_for(feature_names, type="float")`` → an input contract list.
- ``table_csv_bytes(X, y=None, target="target")`` / ``table_parquet_bytes(...)`` → holdout / training files.
- ``register_ready_version(project, actor, estimator, X, y, feature_names, task, *, model_name=None,
  model=None, artifact=None, with_holdout=True, **upload_kwargs)`` → a READY ``ModelVersion``, created
  through the real ``registry.services.model_version_upload`` and validated synchronously in-process by
  the same service the Celery worker runs (``model_version_validate`` under ``job_run``): sandboxed load,
  signature, metrics on the holdout (X, y), reference profile and ONNX check all really happen.
  Works inside plain ``@pytest.mark.django_db`` tests (no worker needed). ``task`` is a
  ``ModelTask`` value, e.g. "binary_classification". Raises AssertionError with the rejection reason if
  the version does not become ready.
- ``upload_file(data, name)`` → a Django ``SimpleUploadedFile`` for services/forms.
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import pandas as pd


def make_classification_frame(n: int = 300, n_features: int = 4, seed: int = 0, n_classes: int = 2):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=n_features, n_informative=min(n_features, 3),
                               n_redundant=0, n_classes=n_classes, random_state=seed)
    names = [f"f{i}" for i in range(n_features)]
    return pd.DataFrame(X, columns=names), y, names


def make_regression_frame(n: int = 300, n_features: int = 4, seed: int = 0):
    from sklearn.datasets import make_regression

    X, y = make_regression(n_samples=n, n_features=n_features, noise=5.0, random_state=seed)
    names = [f"f{i}" for i in range(n_features)]
    return pd.DataFrame(X, columns=names), y, names


def make_logreg(X=None, y=None):
    from sklearn.linear_model import LogisticRegression

    if X is None:
        X, y, _ = make_classification_frame()
    return LogisticRegression(max_iter=500).fit(X, y)


def make_hgb_pipeline(X=None, y=None):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if X is None:
        X, y, _ = make_classification_frame()
    return Pipeline([("scale", StandardScaler()),
                     ("hgb", HistGradientBoostingClassifier(max_iter=20, random_state=0))]).fit(X, y)


def make_ridge(X=None, y=None):
    from sklearn.linear_model import Ridge

    if X is None:
        X, y, _ = make_regression_frame()
    return Ridge().fit(X, y)


def skops_bytes(estimator) -> bytes:
    import skops.io as sio

    return sio.dumps(estimator)


def make_logreg_skops_bytes() -> bytes:
    return skops_bytes(make_logreg())


def pickle_bytes(estimator, protocol: int = 5) -> bytes:
    return pickle.dumps(estimator, protocol=protocol)


def joblib_bytes(estimator, compress=0) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(estimator, buf, compress=compress)
    return buf.getvalue()


def onnx_bytes(estimator, n_features: int) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    return to_onnx(estimator, initial_types=[("X", FloatTensorType([None, n_features]))],
                   options={"zipmap": False}).SerializeToString()


def contract_for(feature_names, type: str = "float") -> list[dict]:  # noqa: A002
    return [{"name": n, "type": type} for n in feature_names]


def _frame(X, y=None, target="target", feature_names=None) -> pd.DataFrame:
    df = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X), columns=feature_names)
    if y is not None:
        df[target] = np.asarray(y)
    return df


def table_csv_bytes(X, y=None, target: str = "target", feature_names=None) -> bytes:
    return _frame(X, y, target, feature_names).to_csv(index=False).encode()


def table_parquet_bytes(X, y=None, target: str = "target", feature_names=None) -> bytes:
    buf = io.BytesIO()
    _frame(X, y, target, feature_names).to_parquet(buf, index=False)
    return buf.getvalue()


def upload_file(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def run_validation_now(version):
    """Run the worker's service for this version synchronously (same code path as the Celery task)."""
    from apps.projects.services import job_run
    from apps.registry import services

    job_run(job_id=version.job_id, body=lambda job: services.model_version_validate(job=job))
    version.refresh_from_db()
    return version


def register_ready_version(project, actor, estimator, X, y, feature_names, task, *, model_name=None,
                           model=None, artifact: bytes | None = None, with_holdout: bool = True, **upload_kwargs):
    from apps.registry import services
    from apps.registry.models import RegisteredModel, VersionStatus

    if model is None:
        model_name = model_name or f"model-{RegisteredModel.objects.count() + 1}"
        model = RegisteredModel.objects.filter(project=project, name=model_name).first() or \
            services.registered_model_create(project=project, actor=actor, name=model_name, task=task,
                                             input_contract=contract_for(feature_names))
    data = artifact if artifact is not None else skops_bytes(estimator)
    holdout = upload_file(table_csv_bytes(X, y, feature_names=feature_names), "holdout.csv") if with_holdout else None
    version = services.model_version_upload(model=model, actor=actor, artifact=upload_file(data, "model.skops"),
                                            holdout=holdout, **upload_kwargs)
    version = run_validation_now(version)
    if version.status != VersionStatus.READY:
        raise AssertionError(f"{version} was not validated: {version.status_reason}")
    return version


# --- XGBoost / LightGBM (native formats and sklearn wrappers) --------------------------------------


def make_booster(library: str, kind: str, X, y, **params):
    """A fitted XGBoost/LightGBM sklearn wrapper: ``library`` "xgboost"|"lightgbm", ``kind``
    "classifier"|"regressor" (small and single-threaded: tests stay fast on 2 cores)."""
    if library == "xgboost":
        import xgboost as xgb

        cls = xgb.XGBClassifier if kind == "classifier" else xgb.XGBRegressor
        return cls(n_estimators=20, max_depth=3, n_jobs=1, random_state=0, **params).fit(X, y)
    import lightgbm as lgb

    cls = lgb.LGBMClassifier if kind == "classifier" else lgb.LGBMRegressor
    return cls(n_estimators=20, num_leaves=8, n_jobs=1, random_state=0, verbose=-1, **params).fit(X, y)


def native_bytes(model, encoding: str = "json") -> bytes:
    """The native file of a fitted wrapper: XGBoost ``save_model`` (.json or .ubj), LightGBM text."""
    import os
    import tempfile

    if hasattr(model, "booster_"):  # LightGBM
        return model.booster_.model_to_string().encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"model.{'ubj' if encoding == 'ubjson' else 'json'}")
        model.save_model(path)
        with open(path, "rb") as fh:
            return fh.read()

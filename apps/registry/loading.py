"""The ONLY way any app loads a registered model for prediction.

``load_predictor(version)`` opens the safe form the registry stored for a READY (or archived)
version: the ONNX form through onnxruntime (one intra-op and one inter-op thread) when
``serving_format == "onnx"`` and ``onnx_verified``; for XGBoost/LightGBM uploads the native model as
the library re-saved it in the sandbox (``serving_format`` "xgboost"/"lightgbm", one thread); otherwise
the skops form with the server's fixed allowlist (apps.registry.allowlist). Nothing here ever unpickles. Caching by version id is the
caller's job (serving keeps one Predictor per version per process).

``Predictor.predict(X)`` takes a 2-D array whose columns follow the model's input contract and returns
``(predictions, probabilities)``: probabilities is an (n, n_classes) float array in ``classes`` order
for classifiers that have them, else None.

``load_estimator(version)`` returns the scikit-learn estimator from the skops form (training jobs
clone and refit it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from apps.common.errors import Conflict, Unavailable
from apps.common.storage import artifact_store

from .allowlist import skops_trusted_types
from .models import NATIVE_FORMATS, ModelVersion, ServingFormat, VersionStatus

LOADABLE_STATUSES = (VersionStatus.READY, VersionStatus.ARCHIVED)


def skops_loads(data: bytes):
    """Load skops bytes with the server's fixed trusted list (never the file's own list)."""
    import skops.io as sio

    return sio.loads(data, trusted=skops_trusted_types())


def onnx_session(data: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


@dataclass
class Predictor:
    feature_names: list[str]
    classes: list | None
    version_id: int
    format: str
    _predict: object = field(repr=False, default=None)

    def predict(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        if hasattr(X, "columns"):  # a typed DataFrame (contracts with string/datetime features)
            if [str(c) for c in X.columns] != list(self.feature_names):
                raise ValueError("expected the contract's columns in order: " + ", ".join(self.feature_names))
            return self._predict(X)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"expected a 2-D array with {len(self.feature_names)} columns, got shape {X.shape}")
        return self._predict(X)


def _estimator_predict_fn(estimator, feature_names: list[str], classes: list | None):
    has_names = getattr(estimator, "feature_names_in_", None) is not None
    has_proba = classes is not None and hasattr(estimator, "predict_proba")

    def predict(X):
        if hasattr(X, "columns"):
            data = X if has_names else X.to_numpy()
        elif has_names:
            import pandas as pd

            data = pd.DataFrame(X, columns=feature_names)
        else:
            data = X
        preds = np.asarray(estimator.predict(data))
        proba = np.asarray(estimator.predict_proba(data), dtype="float64") if has_proba else None
        return preds, proba

    return predict


def onnx_predict_fn(session, classes: list | None):
    """A predict function over an onnxruntime session taking one 2-D float input.

    Classifier outputs: a label tensor and a probability tensor (or a ZipMap sequence of dicts);
    regressor output: one (n, 1) or (n,) value tensor.
    """
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type == "tensor(string)":
        return _onnx_columns_predict_fn(session, classes)
    input_name = inputs[0].name
    input_type = inputs[0].type
    dtype = np.float64 if input_type == "tensor(double)" else np.float32
    outputs = session.get_outputs()
    output_names = [o.name for o in outputs]

    def predict(X: np.ndarray):
        results = session.run(output_names, {input_name: np.ascontiguousarray(X, dtype=dtype)})
        preds = np.asarray(results[0])
        if preds.ndim == 2 and preds.shape[1] == 1:
            preds = preds[:, 0]
        proba = None
        if classes is not None and len(results) > 1:
            raw = results[1]
            if isinstance(raw, list):  # ZipMap: one {class: probability} dict per row
                proba = np.array([[row[c] for c in classes] for row in raw], dtype="float64")
            else:
                proba = np.asarray(raw, dtype="float64")
        return preds, proba

    return predict


def _outputs(results, classes):
    preds = np.asarray(results[0])
    if preds.ndim == 2 and preds.shape[1] == 1:
        preds = preds[:, 0]
    proba = None
    if classes is not None and len(results) > 1:
        raw = results[1]
        if isinstance(raw, list):
            proba = np.array([[row[c] for c in classes] for row in raw], dtype="float64")
        else:
            proba = np.asarray(raw, dtype="float64")
    return preds, proba


_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
                "tensor(string)": object, "tensor(bool)": bool}


def _onnx_columns_predict_fn(session, classes: list | None):
    """An ONNX model with one (n, 1) input per contract column, in contract order (skl2onnx's form of a
    pipeline on a DataFrame with text columns: string tensors for text, float tensors for numbers).
    Takes the typed DataFrame; columns are matched by position (skl2onnx renames inputs such as
    "Monthly Spend ($)" to valid identifiers)."""
    inputs = session.get_inputs()
    layout = []
    for inp in inputs:
        if inp.type not in _ONNX_DTYPES:
            raise Conflict(f"The ONNX input {inp.name!r} has the unsupported type {inp.type}")
        layout.append((inp.name, _ONNX_DTYPES[inp.type]))
    output_names = [o.name for o in session.get_outputs()]

    def predict(X):
        if not hasattr(X, "columns") or X.shape[1] != len(layout):
            raise ValueError(f"expected a DataFrame with {len(layout)} columns")
        feeds = {}
        for j, (name, dtype) in enumerate(layout):
            col = X.iloc[:, j].to_numpy()
            if dtype is object:
                col = np.asarray(col, dtype=object)
                if any(v is None or v != v for v in col):
                    raise ValueError("a text feature is missing (null): the ONNX form cannot take it")
            else:
                col = np.asarray(col, dtype=dtype)
            feeds[name] = col.reshape(-1, 1)
        return _outputs(session.run(output_names, feeds), classes)

    return predict


def native_predict_fn(fmt: str, data: bytes, classes: list | None, *, has_probabilities: bool = True):
    """A predict function over an XGBoost/LightGBM booster (one thread), with scikit-learn's answers:
    binary → P(class 1) > 0.5, multiclass → argmax, regressors → the value."""
    if fmt == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        booster.set_param({"nthread": 1})

        def raw(X):
            return np.asarray(booster.inplace_predict(X, validate_features=False), dtype="float64")
    elif fmt == "lightgbm":
        import lightgbm as lgb

        booster = lgb.Booster(model_str=data.decode("utf-8"))

        def raw(X):
            return np.asarray(booster.predict(X, num_threads=1), dtype="float64")
    else:
        raise Conflict(f"Unknown native model format {fmt!r}")
    labels = np.asarray(classes) if classes is not None else None

    def predict(X: np.ndarray):
        out = raw(np.ascontiguousarray(X, dtype="float64"))
        if labels is None:
            return out.reshape(-1), None
        if not has_probabilities:  # multi:softmax answers class indices
            return labels[out.reshape(-1).astype(int)], None
        if out.ndim == 1:
            proba = np.column_stack([1.0 - out, out])
            return labels[(out > 0.5).astype(int)], proba
        return labels[out.argmax(axis=1)], out

    return predict


def _classes(version: ModelVersion) -> list | None:
    return list(version.classes) if version.classes is not None else None


def _check_loadable(version: ModelVersion) -> None:
    if version.status not in LOADABLE_STATUSES:
        raise Conflict(f"{version} is {version.status}: only validated versions can be loaded")


def load_predictor(version: ModelVersion) -> Predictor:
    """Load the serving form of a validated version (ONNX when verified, else skops)."""
    _check_loadable(version)
    store = artifact_store()
    names = version.model.feature_names
    classes = _classes(version)
    if version.serving_format == ServingFormat.ONNX and version.onnx_verified and version.onnx_artifact_key:
        if not store.exists(version.onnx_artifact_key):
            raise Unavailable(f"The ONNX artifact of {version} is missing from storage")
        session = onnx_session(store.read_bytes(version.onnx_artifact_key))
        return Predictor(feature_names=names, classes=classes, version_id=version.pk, format="onnx",
                         _predict=onnx_predict_fn(session, classes))
    if version.serving_format in NATIVE_FORMATS:
        if not version.safe_artifact_key or not store.exists(version.safe_artifact_key):
            raise Unavailable(f"The {version.serving_format} model of {version} is missing from storage")
        booster = (version.validation_report or {}).get("load", {}).get("booster", {})
        fn = native_predict_fn(version.serving_format, store.read_bytes(version.safe_artifact_key), classes,
                               has_probabilities=booster.get("has_probabilities", True))
        return Predictor(feature_names=names, classes=classes, version_id=version.pk,
                         format=version.serving_format, _predict=fn)
    estimator = load_estimator(version)
    return Predictor(feature_names=names, classes=classes, version_id=version.pk, format="skops",
                     _predict=_estimator_predict_fn(estimator, names, classes))


def load_estimator(version: ModelVersion):
    """The scikit-learn estimator of a validated version, from its skops form."""
    _check_loadable(version)
    if version.artifact_format in NATIVE_FORMATS:
        raise Conflict(f"{version} is a native {version.artifact_format} model, not a scikit-learn estimator: "
                       "upload it inside a scikit-learn Pipeline (skops) to retrain it here")
    if not version.safe_artifact_key:
        raise Conflict(f"{version} has no scikit-learn form (it was uploaded as {version.artifact_format})")
    store = artifact_store()
    if not store.exists(version.safe_artifact_key):
        raise Unavailable(f"The skops artifact of {version} is missing from storage")
    return skops_loads(store.read_bytes(version.safe_artifact_key))


def load_estimator_from_bytes(data: bytes):
    """Validation helper: the estimator from skops bytes (same trusted list)."""
    return skops_loads(data)


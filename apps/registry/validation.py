"""Validation of a newly uploaded model version (runs in a Celery worker; called by services).

Steps: scan (bounded decompression + static pickle scan / skops zip and type checks / static structure
of XGBoost UBJSON and LightGBM text models / ONNX sniff) → load in an isolated, resource-limited process
(apps.registry.sandbox) which also converts pickles to skops and re-saves XGBoost/LightGBM models with
their library (plus an onnxmltools ONNX form) → load the safe form → input signature vs the contract → task check → smoke prediction →
holdout metrics → reference profile → skl2onnx conversion and equality check → ready.

Any failure raises ``Rejected`` with a message for people; services turn it into a rejected version.

ONNX equality tolerance (stated on the version page too): on the comparison rows (the holdout, else
the reference data, else 64 synthetic rows) classifiers need identical labels on at least 99 % of rows,
class probabilities within 1e-3 on at least 95 % of rows and never more than 0.25 apart; regressors
need |Δ| ≤ 1e-3·(1 + |y|) on at least 95 % of rows and never more than 0.05·(1 + std(y)). ONNX tree
ensembles compute in float32, so a few rows near a split threshold may legitimately differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from django.conf import settings

from apps.common.storage import artifact_store

from . import contract as spec
from . import infer as infer_mod
from . import profile as profile_mod
from . import unknown_probe
from .boosters import BoosterRejected, read_lightgbm, read_ubjson, xgboost_encoding
from .loading import _estimator_predict_fn, native_predict_fn, onnx_predict_fn, onnx_session, skops_loads
from .models import NATIVE_FORMATS, ModelTask, ModelVersion
from .scan import InflateRefused, ScanRejected, detect_compression, inflate_to, scan_file
from .sniff import SniffError, check_skops_zip

ONNX_LABEL_AGREEMENT = 0.99
ONNX_PROBA_TOL = 1e-3
ONNX_PROBA_SHARE = 0.95
ONNX_PROBA_MAX = 0.25
ONNX_REG_REL_TOL = 1e-3
ONNX_REG_MAX_STD = 0.05
TOLERANCE_TEXT = (
    "classifiers: identical labels on ≥ 99 % of rows, probabilities within 1e-3 on ≥ 95 % of rows and "
    "never more than 0.25 apart; regressors: |Δ| ≤ 1e-3·(1+|y|) on ≥ 95 % of rows and never more than "
    "0.05·(1+std y)")


class Rejected(Exception):
    def __init__(self, message: str, *, step: str = ""):
        super().__init__(message)
        self.message = message
        self.step = step


Progress = Callable[[int, str], None]


# --- the steps --------------------------------------------------------------------------------


_FORKSERVER = None


def _forkserver_context():
    """A multiprocessing forkserver that has scikit-learn, skops, onnx and onnxruntime imported once;
    each load is a fresh child forked from it (a clean, single-purpose process), not a thread."""
    global _FORKSERVER
    if _FORKSERVER is None:
        import multiprocessing
        from multiprocessing import forkserver

        from .sandbox import PRELOAD

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        os.environ.update({k: "1" for k in saved})
        try:
            forkserver.ensure_running()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        _FORKSERVER = ctx
    return _FORKSERVER


def run_sandbox(kind: str, path: str, out_dir: str) -> dict:
    """Load the artifact in a separate process with memory (RLIMIT_AS), CPU and wall-clock limits.

    Normally a child of a preloaded forkserver; falls back to a fresh ``python -m
    apps.registry.sandbox`` process where multiprocessing is unavailable."""
    from .allowlist import sklearn_estimator_globals

    timeout = settings.REGISTRY_SANDBOX_TIMEOUT_SECONDS
    memory = settings.REGISTRY_SANDBOX_MEMORY_BYTES
    allowlist = sorted(sklearn_estimator_globals())
    try:
        ctx = _forkserver_context()
    except Exception:  # noqa: BLE001 - e.g. inside a daemonic pool process: use a plain subprocess
        return _run_subprocess(kind, path, out_dir, allowlist)
    from .sandbox import child_main

    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child_main, args=(kind, path, out_dir, memory, timeout, child_conn, allowlist),
                       daemon=True)
    try:
        proc.start()
    except Exception:  # noqa: BLE001
        return _run_subprocess(kind, path, out_dir, allowlist)
    child_conn.close()
    result = None
    try:
        if parent_conn.poll(timeout):
            result = parent_conn.recv()
    except (EOFError, OSError):
        result = None
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        parent_conn.close()
    if result is None:
        if proc.exitcode == -9:
            raise Rejected(f"Loading the model took longer than the limit of {timeout} s (or was killed)",
                           step="load")
        if proc.exitcode and proc.exitcode < 0:
            raise Rejected(f"The loader process was stopped by signal {-proc.exitcode} (memory limit "
                           f"{memory // (1024 * 1024)} MB, CPU limit {timeout} s)", step="load")
        raise Rejected(f"The loader process ended without a result (exit code {proc.exitcode}); the model "
                       f"may need more than {memory // (1024 * 1024)} MB or {timeout} s", step="load")
    if not result.get("ok"):
        raise Rejected(result.get("error") or "The model could not be loaded", step="load")
    return result


def _run_subprocess(kind: str, path: str, out_dir: str, allowlist: list) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(settings.BASE_DIR),
        "HOME": out_dir,
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    allowlist_file = os.path.join(out_dir, "allowlist.json")
    with open(allowlist_file, "w") as fh:
        json.dump(allowlist, fh)
    env["SLIPWAY_ALLOWLIST_FILE"] = allowlist_file
    timeout = settings.REGISTRY_SANDBOX_TIMEOUT_SECONDS
    memory = settings.REGISTRY_SANDBOX_MEMORY_BYTES
    cmd = [sys.executable, "-m", "apps.registry.sandbox", kind, path, out_dir, str(memory), str(timeout)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=out_dir,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise Rejected(f"Loading the model took longer than the limit of {timeout} s", step="load") from exc
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        if proc.returncode and proc.returncode < 0:
            raise Rejected(f"The loader process was stopped by signal {-proc.returncode} (memory limit "
                           f"{memory // (1024 * 1024)} MB, CPU limit {timeout} s)", step="load")
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise Rejected(f"The loader process failed: {tail[0][:300]}", step="load")
    result = json.loads(lines[-1])
    if not result.get("ok"):
        raise Rejected(result.get("error") or "The model could not be loaded", step="load")
    return result


def scan_artifact(version: ModelVersion, tmp: str, report: dict) -> tuple[str, str]:
    """Returns (sandbox kind, path to load). Updates version.artifact_format for pickles."""
    src = str(artifact_store().path(version.artifact_key))
    fmt = version.artifact_format
    if fmt in ("pickle", "joblib"):
        with open(src, "rb") as fh:
            head = fh.read(16)
        kind = detect_compression(head)
        path = src
        if kind:
            path = os.path.join(tmp, "inflated.bin")
            try:
                with open(src, "rb") as fin, open(path, "wb") as fout:
                    size = inflate_to(fin, fout, kind=kind, input_size=version.artifact_size,
                                      max_bytes=settings.REGISTRY_INFLATE_MAX_BYTES,
                                      max_ratio=settings.REGISTRY_INFLATE_MAX_RATIO)
            except InflateRefused as exc:
                raise Rejected(str(exc), step="scan") from exc
            report["compression"] = {"kind": kind, "inflated_bytes": size}
        try:
            result = scan_file(path)
        except ScanRejected as exc:
            raise Rejected(f"Unsafe or unreadable pickle: {exc}", step="scan") from exc
        version.artifact_format = "joblib" if (result.is_joblib or kind) else "pickle"
        report["scan"] = {"protocol": result.protocol, "opcodes": result.opcodes,
                          "globals": sorted(f"{m}.{n}" for m, n in result.globals),
                          "joblib_arrays": result.joblib_arrays}
        return version.artifact_format, path
    if fmt == "skops":
        try:
            report["scan"] = check_skops_zip(src, max_inflated=settings.REGISTRY_INFLATE_MAX_BYTES,
                                             max_ratio=settings.REGISTRY_INFLATE_MAX_RATIO)
        except SniffError as exc:
            raise Rejected(str(exc), step="scan") from exc
        import skops.io as sio

        from .allowlist import skops_trusted_types

        try:
            found = sio.get_untrusted_types(file=src)
        except Exception as exc:  # noqa: BLE001
            raise Rejected(f"The skops file cannot be read: {exc}", step="scan") from exc
        untrusted = sorted(set(found) - set(skops_trusted_types()))
        if untrusted:
            raise Rejected("The skops file contains types that are not on the server's allowlist: "
                           + ", ".join(untrusted[:10]), step="scan")
        return "skops", src
    if fmt in NATIVE_FORMATS:
        # Streaming checks with bounded memory here; XGBoost JSON is parsed whole only in the sandbox.
        try:
            if fmt == "lightgbm":
                info = read_lightgbm(src)
                report["scan"] = {"objective": info.objective, "trees": info.n_trees, "features": info.n_features}
            else:
                with open(src, "rb") as fh:
                    encoding = xgboost_encoding(fh.read(64))
                if encoding == "ubjson":
                    read_ubjson(src)
                report["scan"] = {"encoding": encoding}
        except BoosterRejected as exc:
            raise Rejected(str(exc), step="scan") from exc
        return fmt, src
    return "onnx", src


def _coerce(df: pd.DataFrame, contract: list[dict]) -> pd.DataFrame:
    """The data file's contract columns typed as serving types them (apps.registry.contract)."""
    return spec.coerce_frame(df, contract)


def read_table(key: str, *, label: str, contract: list[dict] | None = None,
               null_values: list[str] | None = None) -> pd.DataFrame:
    """Read a holdout / training data file with the portal's one parser (``apps.common.tabular``): the
    contract's feature types are declared, so a text value in a numeric feature is refused naming the
    column and rows (never coerced to NaN), duplicate column names are refused, "NA" stays a string unless
    the upload named it in ``null_values`` (its extra null tokens; only the empty cell by default)."""
    from apps.common import tabular

    types = {c["name"]: spec.canonical_type(c.get("type")) for c in (contract or [])
             if spec.canonical_type(c.get("type")) in tabular.TYPES}
    try:
        frame, _fmt = tabular.read_table(artifact_store().path(key), filename=f"The {label}", types=types,
                                         null_values=null_values, max_rows=settings.REGISTRY_TABLE_MAX_ROWS)
    except tabular.TableError as exc:  # named by file: a version may carry a holdout and a training data file
        message = str(exc)
        raise Rejected(message if message.startswith(f"The {label}") else f"The {label}: {message}",
                       step="data") from exc
    except Exception as exc:  # noqa: BLE001 - unreadable data files are rejections
        raise Rejected(f"The {label} cannot be read: {str(exc).splitlines()[0][:300]}", step="data") from exc
    return frame.to_pandas()


def _contract_frame(df: pd.DataFrame, contract: list[dict], label: str) -> pd.DataFrame:
    missing = [c["name"] for c in contract if c["name"] not in df.columns]
    if missing:
        raise Rejected(f"The {label} lacks the contract feature(s): {', '.join(missing)}", step="data")
    return _coerce(df, contract)


def _matrix(df: pd.DataFrame, contract: list[dict]):
    """What the predictor takes: the float64 matrix for number/bool contracts (bool as 1.0/0.0, as serving
    sends it), else the typed DataFrame itself."""
    if spec.is_numeric_only(contract):
        return df[[c["name"] for c in contract]].astype("float64").to_numpy(dtype="float64", na_value=np.nan)
    return df[[c["name"] for c in contract]]


def _synthetic(contract: list[dict], n: int = 64) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    columns = []
    for c in contract:
        typ = spec.canonical_type(c["type"])
        cats = c.get("categories")
        if cats:
            columns.append([cats[i % len(cats)] for i in range(n)])
        elif typ == "float":
            columns.append(rng.normal(size=n).tolist())
        elif typ == "int":
            columns.append(rng.integers(0, 5, size=n).tolist())
        elif typ == "bool":
            columns.append([bool(v) for v in rng.integers(0, 2, size=n)])
        elif typ == "datetime":
            columns.append(["2026-01-01T00:00:00"] * n)
        else:
            columns.append(["a"] * n)
    return spec.typed_frame(columns, contract)


def _json_value(value):
    if isinstance(value, (str, int, float, bool, type(None))):
        if isinstance(value, float) and not np.isfinite(value):
            return str(value)
        return value
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (list, tuple)) and len(value) <= 20 and all(
        isinstance(v, (str, int, float, bool, type(None))) for v in value
    ):
        return list(value)
    if hasattr(value, "get_params"):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def estimator_params(estimator) -> dict:
    try:
        params = estimator.get_params(deep=True)
    except Exception:  # noqa: BLE001
        return {}
    return {k: _json_value(v) for k, v in sorted(params.items()) if k not in ("steps", "memory")}


def _class_list(classes) -> list:
    return [c.item() if hasattr(c, "item") else c for c in list(classes)]


def check_signature_sklearn(estimator, contract: list[dict]) -> dict:
    names = [c["name"] for c in contract]
    model_names = getattr(estimator, "feature_names_in_", None)
    if model_names is not None:
        model_names = [str(n) for n in model_names]
        missing = [n for n in model_names if n not in names]
        extra = [n for n in names if n not in model_names]
        problems = []
        if missing:
            problems.append("the model expects feature(s) missing from the contract: " + ", ".join(missing))
        if extra:
            problems.append("the contract declares feature(s) the model was not trained on: " + ", ".join(extra))
        if problems:
            raise Rejected("Input signature mismatch: " + "; ".join(problems), step="signature")
        if model_names != names:
            raise Rejected("Input signature mismatch: the contract lists the features in another order than "
                           f"the model ({', '.join(model_names)})", step="signature")
        return {"source": "feature_names_in_", "features": model_names}
    n = getattr(estimator, "n_features_in_", None)
    if n is not None and int(n) != len(names):
        raise Rejected(f"Input signature mismatch: the model takes {int(n)} features, the contract declares "
                       f"{len(names)} ({', '.join(names)})", step="signature")
    return {"source": "n_features_in_" if n is not None else "none", "n_features": int(n) if n is not None else None}


def check_signature_booster(info: dict, contract: list[dict]) -> dict:
    """Width, and names when the file has them (LightGBM writes spaces in names as '_')."""
    names = [c["name"] for c in contract]
    if info["n_features"] != len(names):
        raise Rejected(f"Input signature mismatch: the {info['library']} model takes {info['n_features']} "
                       f"features, the contract declares {len(names)} ({', '.join(names)})", step="signature")
    model_names = info.get("feature_names")
    if not model_names:
        return {"source": "num_feature", "n_features": info["n_features"]}
    expected = ["_".join(n.split()) for n in names] if info["library"] == "lightgbm" else names
    if model_names != expected:
        diff = [f"{m} ≠ {c}" for m, c in zip(model_names, expected, strict=True) if m != c]
        raise Rejected("Input signature mismatch: the model's feature names differ from the contract "
                       f"(model ≠ contract: {'; '.join(diff[:10])})", step="signature")
    return {"source": "feature_names", "features": model_names}


def check_task(task: str, classes: list | None) -> None:
    if task == ModelTask.REGRESSION:
        if classes is not None:
            raise Rejected("The model is a classifier but the registered model's task is regression", step="task")
        return
    if classes is None:
        raise Rejected(f"The model is a regressor but the registered model's task is {task.replace('_', ' ')}",
                       step="task")
    if task == ModelTask.BINARY and len(classes) != 2:
        raise Rejected(f"Binary classification needs 2 classes; the model has {len(classes)}", step="task")
    if task == ModelTask.MULTICLASS and len(classes) < 3:
        raise Rejected(f"Multiclass classification needs at least 3 classes; the model has {len(classes)}",
                       step="task")


def compute_metrics(task: str, y_true, preds, proba, classes) -> dict:
    from sklearn import metrics as m

    if task == ModelTask.REGRESSION:
        y = np.asarray(y_true, dtype="float64")
        p = np.asarray(preds, dtype="float64")
        return {"mae": float(m.mean_absolute_error(y, p)), "rmse": float(np.sqrt(m.mean_squared_error(y, p))),
                "r2": float(m.r2_score(y, p)), "n": int(len(y))}
    out = {"accuracy": float(m.accuracy_score(y_true, preds)), "n": int(len(y_true))}
    if task == ModelTask.BINARY:
        pos = classes[1]
        out["precision"] = float(m.precision_score(y_true, preds, pos_label=pos, zero_division=0))
        out["recall"] = float(m.recall_score(y_true, preds, pos_label=pos, zero_division=0))
        out["f1"] = float(m.f1_score(y_true, preds, pos_label=pos, zero_division=0))
        if proba is not None and len(set(y_true)) == 2:
            out["roc_auc"] = float(m.roc_auc_score(np.asarray(y_true) == pos, proba[:, 1]))
    else:
        out["precision"] = float(m.precision_score(y_true, preds, average="macro", zero_division=0))
        out["recall"] = float(m.recall_score(y_true, preds, average="macro", zero_division=0))
        out["f1"] = float(m.f1_score(y_true, preds, average="macro", zero_division=0))
        if proba is not None and len(set(y_true)) == len(classes):
            out["roc_auc"] = float(m.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    if proba is not None:
        clipped = np.clip(proba, 1e-15, 1)
        out["log_loss"] = float(m.log_loss(y_true, clipped / clipped.sum(axis=1, keepdims=True), labels=classes))
    return out


def _align_labels(y: pd.Series, classes: list) -> pd.Series:
    if classes and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        y = pd.to_numeric(y, errors="coerce")
        if all(isinstance(c, int) for c in classes):
            y = y.astype("Int64")
        out = y.astype(object)
    elif classes and all(isinstance(c, bool) for c in classes):
        out = y.map(lambda v: str(v).strip().lower() in ("1", "true", "yes")).astype(object)
    else:
        out = y.astype(str).astype(object)
    unknown = sorted({str(v) for v in out.dropna().unique()} - {str(c) for c in classes})
    if unknown or out.isna().any():
        raise Rejected("The holdout target has labels the model does not know: "
                       + ", ".join(unknown[:10] or ["(missing)"]), step="metrics")
    return out


def onnx_compare(task: str, ref: tuple, onx: tuple) -> dict:
    """Compare sklearn vs ONNX outputs on the same rows; see TOLERANCE_TEXT."""
    preds, proba = ref
    opreds, oproba = onx
    n = len(preds)
    if task == ModelTask.REGRESSION:
        y = np.asarray(preds, dtype="float64")
        o = np.asarray(opreds, dtype="float64").reshape(-1)
        diff = np.abs(y - o)
        within = float(np.mean(diff <= ONNX_REG_REL_TOL * (1 + np.abs(y))))
        limit = ONNX_REG_MAX_STD * (1 + float(np.std(y)))
        ok = within >= ONNX_PROBA_SHARE and float(diff.max()) <= limit
        return {"rows": n, "share_within_tolerance": within, "max_abs_diff": float(diff.max()), "verified": bool(ok)}
    agree = float(np.mean(np.asarray([str(a) for a in preds]) == np.asarray([str(b) for b in opreds])))
    out = {"rows": n, "label_agreement": agree}
    ok = agree >= ONNX_LABEL_AGREEMENT
    if proba is not None:
        if oproba is None or np.asarray(oproba).shape != np.asarray(proba).shape:
            return {**out, "verified": False, "problem": "ONNX probabilities missing or of another shape"}
        diff = np.abs(np.asarray(proba) - np.asarray(oproba)).max(axis=1)
        within = float(np.mean(diff <= ONNX_PROBA_TOL))
        out.update({"proba_share_within_tolerance": within, "proba_max_abs_diff": float(diff.max())})
        ok = ok and within >= ONNX_PROBA_SHARE and float(diff.max()) <= ONNX_PROBA_MAX
    out["verified"] = bool(ok)
    return out


_BOOSTER_CONVERTERS_REGISTERED = False


def _register_booster_converters() -> None:
    """Teach skl2onnx the XGBoost/LightGBM sklearn wrappers (onnxmltools' converters), once per process."""
    global _BOOSTER_CONVERTERS_REGISTERED
    if _BOOSTER_CONVERTERS_REGISTERED:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    cls_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier",
                                    calculate_linear_classifier_output_shapes, convert_lightgbm, options=cls_options)
        update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor",
                                    calculate_linear_regressor_output_shapes, convert_lightgbm)
    except ImportError:  # pragma: no cover - optional at run time
        pass
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(XGBClassifier, "XGBoostXGBClassifier",
                                    calculate_linear_classifier_output_shapes, convert_xgboost, options=cls_options)
        update_registered_converter(XGBRegressor, "XGBoostXGBRegressor",
                                    calculate_linear_regressor_output_shapes, convert_xgboost)
    except ImportError:  # pragma: no cover
        pass
    _BOOSTER_CONVERTERS_REGISTERED = True


def convert_to_onnx(estimator, n_features: int) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.base import is_classifier

    _register_booster_converters()
    opset = None
    if type(getattr(estimator, "steps", [[None, estimator]])[-1][1]).__module__.split(".")[0] in ("xgboost", "lightgbm"):
        from skl2onnx import get_latest_tested_opset_version

        # onnxmltools' tree converters write ai.onnx.ml 3 at most
        opset = {"": get_latest_tested_opset_version(), "ai.onnx.ml": 3}
    onx = to_onnx(estimator, initial_types=[("X", FloatTensorType([None, n_features]))],
                  options={"zipmap": False} if is_classifier(estimator) else None, target_opset=opset)
    import onnx

    onnx.checker.check_model(onx, full_check=True)
    return onx.SerializeToString()


def onnx_mixed_supported(contract: list[dict]) -> bool:
    """skl2onnx's per-column form: text as string tensors, numbers/bools as float tensors. No datetimes,
    and no nullable text (a string tensor cannot hold a missing value)."""
    for c in contract:
        typ = spec.canonical_type(c["type"])
        if typ == "datetime" or (typ == "string" and c.get("nullable")):
            return False
    return True


def convert_to_onnx_mixed(estimator, contract: list[dict]) -> bytes:
    """One (n, 1) input per contract column, in contract order (serving feeds them by position)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.base import is_classifier

    types = [(c["name"], StringTensorType([None, 1]) if spec.canonical_type(c["type"]) == "string"
              else FloatTensorType([None, 1])) for c in contract]
    onx = to_onnx(estimator, initial_types=types,
                  options={"zipmap": False} if is_classifier(estimator) else None)
    import onnx

    onnx.checker.check_model(onx, full_check=True)
    if len(onx.graph.input) != len(contract):
        raise ValueError("the converted model does not take one input per contract column")
    return onx.SerializeToString()


def _onnx_classes(data: bytes) -> list | None:
    import onnx

    model = onnx.load_from_string(data)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_int64s" and attr.ints:
                return [int(v) for v in attr.ints]
            if attr.name == "classlabels_strings" and attr.strings:
                return [v.decode() for v in attr.strings]
    return None


def _onnx_unknown_problem(task: str, onnx_fn, answered: dict, strict_text: list[str]) -> str | None:
    """Why the ONNX form would treat an unseen category otherwise than the scikit-learn form (None: alike).
    ``answered``: the scikit-learn answers to rows with one feature unseen (``apps.registry.unknown_probe``)."""
    if strict_text:
        return (f"the model refuses unseen values of {', '.join(map(repr, strict_text))}, a text feature without "
                "a list of categories: the scikit-learn form answers them with a 422")
    for name, (X, ref) in answered.items():
        try:
            same = onnx_compare(task, ref, onnx_fn(X))["verified"]
        except Exception as exc:  # noqa: BLE001 - the ONNX form fails where scikit-learn answers
            return f"on an unknown category of {name!r} the ONNX form fails ({type(exc).__name__}) where scikit-learn answers"
        if not same:
            return f"on an unknown category of {name!r} the ONNX form answers otherwise than scikit-learn"
    return None


# --- the whole validation ---------------------------------------------------------------------


def upload_null_values(version: ModelVersion) -> list[str]:
    """The extra null tokens the upload named for its holdout and training data files (kept in the
    validation job's params by ``services.model_version_upload``)."""
    params = (version.job.params or {}) if version.job_id else {}
    return list(params.get("null_values") or [])


def _inference_frame(version: ModelVersion, holdout: pd.DataFrame | None, declared: list[dict]) -> pd.DataFrame | None:
    """The data whose dtypes type the contract: the training data, else the holdout (target dropped)."""
    if version.training_data_key:
        return read_table(version.training_data_key, label="training data file", contract=declared,
                          null_values=upload_null_values(version))
    if version.training_set_id and version.training_set.artifact_key:
        return read_table(version.training_set.artifact_key, label="training set", contract=declared)
    return holdout


def _check_declared_against_model(declared: list[dict], estimator) -> None:
    """What the model alone says (feature_names_in_, its encoders and scalers) against the declared
    contract, before any data file is read; refused naming every difference."""
    if not declared:
        return
    try:
        found, sources = infer_mod.found_contract(estimator, None)
        canonical = spec.normalize_contract(declared)
    except spec.ContractSpecError:
        return  # no names in the model / an invalid stored contract: resolve_contract decides
    problems = spec.differences(canonical, found, found_from="the model")
    if problems:
        raise Rejected("Input signature mismatch: " + "; ".join(problems), step="signature")


def resolve_contract(version: ModelVersion, estimator, frame: pd.DataFrame | None, report: dict) -> list[dict]:
    """The contract this version is validated against: the model's declared one, checked against what the
    artifacts say (refused naming the differences), or — when the registered model asks for inference
    (an empty contract) — the one read from the artifacts (``apps.registry.infer``)."""
    declared = list(version.model.input_contract or [])
    target = version.holdout_target or "target"
    if not declared:
        if estimator is None:
            raise Rejected("The contract cannot be inferred from an ONNX upload: declare the input contract on "
                           "the registered model", step="contract")
        try:
            contract, sources = infer_mod.infer_contract(estimator, frame, exclude=(target,))
        except spec.ContractSpecError as exc:
            raise Rejected(str(exc), step="contract") from exc
        report["contract"] = {"inferred": True, "sources": sources, "features": contract}
        return contract
    try:
        declared = spec.normalize_contract(declared)
    except spec.ContractSpecError as exc:
        raise Rejected(f"The registered model's contract is invalid: {exc}", step="contract") from exc
    if estimator is not None:
        try:
            found, sources = infer_mod.found_contract(estimator, frame, exclude=(target,))
        except spec.ContractSpecError:
            found, sources = None, []
        if found is not None and sources and sources[0] == "the model's feature_names_in_":
            problems = spec.differences(declared, found, found_from="the model")
        elif found is not None:
            # names from the data file only: a data file may carry extra columns, so only types count
            by_name = {f["name"]: f for f in found}
            problems = spec.differences(declared, [by_name[c["name"]] for c in declared if c["name"] in by_name],
                                        found_from="the data file") if all(
                c["name"] in by_name for c in declared) else []
        else:
            problems = []
        if problems:
            raise Rejected("Input signature mismatch: " + "; ".join(problems), step="signature")
    elif frame is not None:
        types = infer_mod.frame_types(frame)
        found = [{"name": c["name"], "source": "data", **types[c["name"]]} for c in declared if c["name"] in types]
        problems = [p for p in spec.differences(declared, found, found_from="the data file")
                    if " is declared " in p]
        if problems:
            raise Rejected("Input signature mismatch: " + "; ".join(problems), step="signature")
    return declared


def validate(version: ModelVersion, progress: Progress) -> dict:
    """Validate ``version`` in place (fields set, not saved). Raises Rejected. Returns the report.

    When the registered model has no contract yet ("input_contract": "infer"), the contract read from the
    artifacts is in ``report["contract"]``; the service stores it on the model with the ready version."""
    import sklearn

    model = version.model
    report: dict = {"steps": [], "tolerance": TOLERANCE_TEXT}
    store = artifact_store()

    def step(name: str, pct: int, message: str):
        report["steps"].append(name)
        progress(pct, message)

    with tempfile.TemporaryDirectory(prefix="slipway-validate-") as tmp:
        step("scan", 5, "Scanning the artifact")
        kind, path = scan_artifact(version, tmp, report)
        step("load", 20, "Loading it in an isolated process")
        loaded = run_sandbox(kind, path, tmp)
        report["load"] = {k: v for k, v in loaded.items() if k not in ("ok", "skops_path", "native_path",
                                                                       "onnx_path")}
        native_onnx = None
        if kind in ("pickle", "joblib"):
            safe = store.put_file(Path(loaded["skops_path"]), suffix=".skops")
            version.safe_artifact_key = safe.key
        elif kind == "skops":
            version.safe_artifact_key = version.artifact_key
        elif kind in NATIVE_FORMATS:
            native = Path(loaded["native_path"])
            version.safe_artifact_key = store.put_file(native, suffix=native.suffix).key
            if loaded.get("onnx_path"):
                native_onnx = Path(loaded["onnx_path"]).read_bytes()

    step("signature", 35, "Checking the input signature")
    declared = list(model.input_contract or [])  # empty: inferred below from the artifacts
    estimator = None
    described = None  # what the contract is read from / checked against
    if kind in NATIVE_FORMATS:
        # a booster file says its width and (XGBoost) its column names; LightGBM rewrites spaces in names,
        # so its names are compared by check_signature_booster below
        info = loaded["booster"]
        described = SimpleNamespace(
            n_features_in_=info["n_features"],
            feature_names_in_=info["feature_names"] if info["library"] == "xgboost" and info["feature_names"] else None)
    elif kind != "onnx":
        try:
            estimator = skops_loads(store.read_bytes(version.safe_artifact_key))
        except Exception as exc:  # noqa: BLE001
            raise Rejected(f"The safe (skops) form cannot be loaded with the server's allowlist: {exc}",
                           step="load") from exc
        described = estimator
    if described is not None:
        _check_declared_against_model(declared, described)
    # the data files are read with the declared types: a text value in a numeric feature is refused naming
    # the column and rows (apps.common.tabular)
    nulls = upload_null_values(version)
    if nulls:
        report["null_values"] = nulls
    holdout = (read_table(version.holdout_key, label="holdout file", contract=declared, null_values=nulls)
               if version.holdout_key else None)
    raw_reference = _inference_frame(version, holdout, declared)
    contract = resolve_contract(version, described, raw_reference, report)
    names = [c["name"] for c in contract]
    if kind == "onnx":
        data = store.read_bytes(version.artifact_key)
        inputs = loaded["inputs"]
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 2:
            raise Rejected("The ONNX model must take exactly one 2-D input (rows × features)", step="signature")
        width = inputs[0]["shape"][1]
        if width is not None and width != len(names):
            raise Rejected(f"Input signature mismatch: the ONNX model takes {width} features, the contract "
                           f"declares {len(names)} ({', '.join(names)})", step="signature")
        if inputs[0]["type"] not in ("tensor(float)", "tensor(double)"):
            raise Rejected(f"The ONNX input must be a float tensor, not {inputs[0]['type']}", step="signature")
        if not spec.is_numeric_only(contract):
            raise Rejected("An uploaded ONNX model takes one float tensor: its contract must be numbers and bools "
                           "only (upload the scikit-learn pipeline for text features)", step="signature")
        classes = _onnx_classes(data) if len(loaded["outputs"]) > 1 else None
        if classes is None and len(loaded["outputs"]) > 1:
            classes = list(range(2))
        session = onnx_session(data)
        predict = onnx_predict_fn(session, classes)
        version.framework = f"onnx ({loaded.get('producer') or 'unknown producer'})"
        version.library_versions = {"onnx_opsets": loaded.get("opsets", {})}
        report["signature"] = {"source": "onnx inputs", "n_features": width}
    elif kind in NATIVE_FORMATS:
        info = loaded["booster"]
        report["signature"] = check_signature_booster(info, contract)
        classes = list(range(info["n_classes"])) if info["is_classifier"] else None
        predict = native_predict_fn(kind, store.read_bytes(version.safe_artifact_key), classes,
                                    has_probabilities=info["has_probabilities"])
        version.framework = f"{kind} {loaded.get('library_version', '')}".strip()
        version.params = {"objective": info["objective"], "trees": info["n_trees"],
                          "booster": info.get("booster") or "gbtree"}
        version.library_versions = {kind: loaded.get("library_version", ""), "numpy": np.__version__}
        report["estimator"] = f"{kind} booster ({info['objective']})"
    else:
        report["signature"] = check_signature_sklearn(estimator, contract)
        classes = _class_list(estimator.classes_) if hasattr(estimator, "classes_") else None
        predict = _estimator_predict_fn(estimator, names, classes)
        version.framework = "scikit-learn"
        version.params = estimator_params(estimator)
        version.library_versions = {"scikit-learn": sklearn.__version__, "numpy": np.__version__}
        report["estimator"] = type(estimator).__name__
    check_task(model.task, classes)
    version.classes = classes

    step("smoke", 45, "Smoke prediction")
    if holdout is not None:
        hx = _contract_frame(holdout, contract, "holdout file")
    reference, source = None, ""
    if version.training_data_key:
        reference, source = _contract_frame(raw_reference, contract, "training data file"), "training"
    elif version.training_set_id and version.training_set.artifact_key:
        reference, source = _contract_frame(raw_reference, contract, "training set"), "training_set"
    elif holdout is not None:
        reference, source = hx, "holdout"
    smoke_df = (hx if holdout is not None else reference if reference is not None else _synthetic(contract)).head(64)
    try:
        sp, sproba = predict(_matrix(smoke_df, contract))
    except Exception as exc:  # noqa: BLE001
        raise Rejected(f"The smoke prediction failed: {type(exc).__name__}: {str(exc)[:300]}", step="smoke") from exc
    if len(sp) != len(smoke_df):
        raise Rejected(f"The smoke prediction returned {len(sp)} rows for {len(smoke_df)} inputs", step="smoke")
    report["smoke"] = {"rows": len(smoke_df), "example": _json_value(sp[0])}
    probe_answers, strict_text = {}, []
    if estimator is not None:  # a scikit-learn model: what does it do with a category it has never seen?
        refused, probe_answers = unknown_probe.run_probes(predict, unknown_probe.probe_frames(smoke_df, contract),
                                                          lambda frame: _matrix(frame, contract))
        report["unknown_categories"] = {"refused_by_model": sorted(refused), "answered_by_model": sorted(probe_answers)}
        problems = unknown_probe.pass_conflicts(contract, refused)
        if problems:
            raise Rejected("The unknown-category policy contradicts the model: " + "; ".join(problems), step="contract")
        strict_text = [c["name"] for c in contract if c["name"] in refused and not c.get("categories")]

    step("metrics", 55, "Computing holdout metrics")
    hpreds = hproba = None
    if holdout is not None:
        target = version.holdout_target or "target"
        if target not in holdout.columns:
            raise Rejected(f"The holdout file has no target column {target!r} (columns: "
                           f"{', '.join(map(str, holdout.columns[:20]))})", step="metrics")
        y = holdout[target]
        if classes is not None:
            y = _align_labels(y, classes)
        elif pd.to_numeric(y, errors="coerce").isna().any():
            raise Rejected(f"The holdout target {target!r} must be numeric for a regressor", step="metrics")
        try:
            hpreds, hproba = predict(_matrix(hx, contract))
        except Exception as exc:  # noqa: BLE001 - e.g. a missing value or category the model cannot take
            raise Rejected(f"The model cannot predict on the holdout file: {type(exc).__name__}: "
                           f"{str(exc)[:300]}", step="metrics") from exc
        version.metrics = compute_metrics(model.task, list(y), list(_class_list(hpreds)), hproba, classes)
        report["holdout"] = {"rows": int(len(holdout)), "target": target}

    step("profile", 70, "Building the reference profile")
    if reference is not None:
        labels = None
        if source == "holdout" and hpreds is not None:
            rp, rproba = hpreds, hproba
            labels = list(y)  # lets monitoring calibrate its performance estimate (CBPE) on the reference
        else:
            try:
                rp, rproba = predict(_matrix(reference, contract))
            except Exception as exc:  # noqa: BLE001 - e.g. missing values the model cannot take
                missing = [c["name"] for c in contract if reference[c["name"]].isna().any()]
                hint = f" (columns with missing values: {', '.join(missing)})" if missing else ""
                raise Rejected(f"The model cannot predict on the {source} data{hint}: "
                               f"{type(exc).__name__}: {str(exc)[:200]}", step="profile") from exc
        prof = profile_mod.build_reference_profile(reference, contract, predictions=rp, probabilities=rproba,
                                                   labels=labels)
        prof["source"] = source
        # the rows monitoring learns from: the labelled holdout when there is one (CBPE, DLE, thresholds)
        rows_df, rows_pred, rows_proba, rows_labels, rows_source = reference, rp, rproba, labels, source
        if holdout is not None and hpreds is not None and source != "holdout":
            rows_df, rows_pred, rows_proba, rows_labels, rows_source = hx, hpreds, hproba, list(y), "holdout"
        data, info = profile_mod.reference_rows(rows_df, contract, predictions=rows_pred, probabilities=rows_proba,
                                                labels=rows_labels, max_rows=settings.MONITORING_REFERENCE_MAX_ROWS)
        info.update(key=artifact_store().put_bytes(data, suffix=".parquet").key, source=rows_source)
        prof["rows"] = info
        version.reference_profile = prof
    else:
        version.reference_profile = {}
        report["profile"] = "No holdout or training data: upload one to give monitoring a drift baseline"

    step("onnx", 80, "Converting to ONNX and comparing predictions")
    compare_df = hx if holdout is not None else reference if reference is not None else _synthetic(contract)
    if kind == "onnx":
        version.onnx_artifact_key = version.artifact_key
        version.onnx_verified = True  # the uploaded ONNX is the only form: checked, opened, smoke-tested
        version.serving_format = "onnx"
        report["onnx"] = {"uploaded": True, "verified": True}
    elif kind in NATIVE_FORMATS:
        version.serving_format = kind
        if native_onnx is None:
            report["onnx"] = {"converted": False, "reason": loaded.get("onnx_error") or "no converter"}
        else:
            X = _matrix(compare_df, contract)
            try:
                oc = onnx_compare(model.task, predict(X), onnx_predict_fn(onnx_session(native_onnx), classes)(X))
            except Exception as exc:  # noqa: BLE001 - no ONNX form is fine: serving uses the native model
                report["onnx"] = {"converted": True, "verified": False,
                                  "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
            else:
                report["onnx"] = {"converted": True, "converter": "onnxmltools", **oc}
                if oc["verified"]:
                    version.onnx_artifact_key = store.put_bytes(native_onnx, suffix=".onnx").key
                    version.onnx_verified = True
                    version.serving_format = "onnx"
    elif spec.is_numeric_only(contract) or onnx_mixed_supported(contract):
        X = _matrix(compare_df, contract)
        try:
            if spec.is_numeric_only(contract):
                onx = convert_to_onnx(estimator, len(names))
            else:
                onx = convert_to_onnx_mixed(estimator, contract)
            onnx_fn = onnx_predict_fn(onnx_session(onx), classes)
            oc = onnx_compare(model.task, predict(X), onnx_fn(X))
            problem = _onnx_unknown_problem(model.task, onnx_fn, probe_answers, strict_text) if oc["verified"] else None
            if problem:
                oc = {**oc, "verified": False, "unknown_categories": problem}
        except Exception as exc:  # noqa: BLE001 - no ONNX form is fine: serving uses skops
            report["onnx"] = {"converted": False, "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
        else:
            report["onnx"] = {"converted": True, **oc}
            if oc["verified"]:
                version.onnx_artifact_key = store.put_bytes(onx, suffix=".onnx").key
                version.onnx_verified = True
        version.serving_format = "onnx" if version.onnx_verified else "skops"
    else:
        report["onnx"] = {"converted": False, "reason": "the contract has datetime or nullable text features, "
                                                        "which the ONNX form cannot take"}
        version.serving_format = "skops"
    progress(95, "Saving")
    return report

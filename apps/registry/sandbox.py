"""The loader that runs in a separate, resource-limited process (pure: no Django).

``python -m apps.registry.sandbox <kind> <input path> <output dir> <memory bytes> <cpu seconds>``

The process first caps its own address space (RLIMIT_AS), CPU time (RLIMIT_CPU), file size
(RLIMIT_FSIZE) and disables core dumps — before it imports scikit-learn or reads a byte of the
upload. The parent (apps.registry.validation) also enforces a wall-clock timeout and kills it.

kinds:
- ``pickle`` / ``joblib``: the (already decompressed) stream is scanned again, then loaded with an
  unpickler whose ``find_class`` only returns allowlisted globals, checked to be a scikit-learn
  estimator and written out as ``model.skops``.
- ``skops``: loaded with the server's fixed trusted list and checked to be an estimator.
- ``xgboost`` / ``lightgbm``: the native (non-executable) model file is checked statically
  (apps.registry.boosters: structure, declared sizes, objective), loaded by the library's own parser,
  re-saved by the library as ``model.ubj`` / ``model.txt`` (the form the registry keeps), and converted
  to ONNX with onnxmltools as ``model.onnx`` when the converter supports it (the parent compares).
- ``onnx``: ``onnx.checker`` full check; external data, non-standard operator domains and local
  functions are refused; the model must open in onnxruntime.

The last line of stdout is one JSON object: ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import json
import os
import sys

ALLOWED_ONNX_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})


def _limit(memory_bytes: int, cpu_seconds: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 1024**3, 4 * 1024**3))


class Refused(Exception):
    pass


def _check_estimator(obj):
    from sklearn.base import BaseEstimator

    if not isinstance(obj, BaseEstimator):
        raise Refused(f"The file holds a {type(obj).__module__}.{type(obj).__qualname__}, not a scikit-learn estimator")
    if not (hasattr(obj, "predict")):
        raise Refused(f"{type(obj).__name__} has no predict method")
    return obj


def load_pickle(path: str):
    """Scan again, then unpickle with a find_class restricted to the allowlist (joblib-aware)."""
    from joblib.numpy_pickle import NumpyUnpickler

    from .allowlist import is_allowed_global
    from .scan import scan_file

    scan_file(path)

    class RestrictedUnpickler(NumpyUnpickler):
        def find_class(self, module, name):
            if not is_allowed_global(module, name):
                raise Refused(f"The pickle imports {module}.{name}, which is not on the allowlist")
            return super().find_class(module, name)

    with open(path, "rb") as fh:
        unpickler = RestrictedUnpickler(path, fh, ensure_native_byte_order=True)
        obj = unpickler.load()
        if unpickler.compat_mode:
            raise Refused("Files written by joblib < 0.10 are not supported")
    return obj


def convert_pickle(path: str, out_dir: str) -> dict:
    import skops.io as sio

    estimator = _check_estimator(load_pickle(path))
    out = os.path.join(out_dir, "model.skops")
    sio.dump(estimator, out)
    return {"skops_path": out, "estimator": type(estimator).__name__}


def check_skops(path: str) -> dict:
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    from .allowlist import skops_trusted_types

    try:
        estimator = sio.load(path, trusted=skops_trusted_types())
    except UntrustedTypesFoundException as exc:
        raise Refused(f"The skops file contains types that are not on the server's allowlist: {exc}") from exc
    _check_estimator(estimator)
    return {"estimator": type(estimator).__name__}


def _graphs(graph):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _tensors(graph):
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors


def check_onnx(path: str) -> dict:
    import onnx

    model = onnx.load(path, load_external_data=False)
    if len(model.functions):
        raise Refused("ONNX models with local functions (custom operators) are not accepted")
    for opset in model.opset_import:
        if opset.domain not in ALLOWED_ONNX_DOMAINS:
            raise Refused(f"The ONNX model imports the non-standard operator domain {opset.domain!r}")
    for graph in _graphs(model.graph):
        for node in graph.node:
            if node.domain not in ALLOWED_ONNX_DOMAINS:
                raise Refused(f"The ONNX model uses the custom operator {node.domain}.{node.op_type}")
        for tensor in _tensors(graph):
            if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
                raise Refused(f"The ONNX model references external data (tensor {tensor.name!r}): refused")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker errors are rejections
        raise Refused(f"The ONNX checker refused the model: {str(exc).splitlines()[0][:300]}") from exc
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), sess_options=options,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise Refused(f"onnxruntime cannot open the model: {str(exc)[:300]}") from exc
    return {
        "inputs": [{"name": i.name, "type": i.type, "shape": [d if isinstance(d, int) else None for d in i.shape]}
                   for i in session.get_inputs()],
        "outputs": [{"name": o.name, "type": o.type} for o in session.get_outputs()],
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
    }


def load_booster(kind: str, path: str, out_dir: str) -> dict:
    from . import boosters

    info = boosters.read_xgboost(path) if kind == "xgboost" else boosters.read_lightgbm(path)
    if kind == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        with open(path, "rb") as fh:
            booster.load_model(bytearray(fh.read()))  # the format is read from the content, not the name
        booster.set_param({"nthread": 1})
        if booster.num_features() != info.n_features:
            raise Refused(f"XGBoost reads {booster.num_features()} features, the file declares {info.n_features}")
        out = os.path.join(out_dir, "model.ubj")
        booster.save_model(out)
        version = xgb.__version__
    else:
        import lightgbm as lgb

        booster = lgb.Booster(model_file=path)
        if booster.num_feature() != info.n_features:
            raise Refused(f"LightGBM reads {booster.num_feature()} features, the file declares {info.n_features}")
        out = os.path.join(out_dir, "model.txt")
        booster.save_model(out)
        version = lgb.__version__
    result = {"native_path": out, "booster": info.as_dict(), "library_version": version}
    try:
        result["onnx_path"] = convert_booster_to_onnx(kind, out, info.n_features, out_dir)
    except Exception as exc:  # noqa: BLE001 - no ONNX form is fine: the native form is served
        result["onnx_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return result


def convert_booster_to_onnx(kind: str, native_path: str, n_features: int, out_dir: str) -> str:
    """onnxmltools conversion of the re-saved native model (float32 input named ``X``), checked."""
    import onnx
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("X", FloatTensorType([None, n_features]))]
    if kind == "xgboost":
        import xgboost as xgb
        from onnxmltools import convert_xgboost

        booster = xgb.Booster()
        booster.load_model(native_path)
        booster.feature_names = None  # the converter wants f0..fN; columns are positional in serving anyway
        onx = convert_xgboost(booster, initial_types=types)
    else:
        import lightgbm as lgb
        from onnxmltools import convert_lightgbm

        onx = convert_lightgbm(lgb.Booster(model_file=native_path), initial_types=types, zipmap=False)
    onnx.checker.check_model(onx, full_check=True)
    out = os.path.join(out_dir, "model.onnx")
    with open(out, "wb") as fh:
        fh.write(onx.SerializeToString())
    return out


PRELOAD = ["apps.registry.sandbox", "numpy", "sklearn.base", "sklearn.pipeline", "joblib", "skops.io", "onnx",
           "onnxruntime", "xgboost", "lightgbm"]


def child_main(kind: str, path: str, out_dir: str, memory: int, cpu: int, conn, allowlist: list) -> None:
    """Entry point in a process forked from the forkserver (modules preloaded, limits set first)."""
    _limit(memory, cpu)
    from . import allowlist as allowlist_mod

    allowlist_mod.sklearn_estimator_globals.cache_clear()
    allowlist_mod.pickle_allowed_globals.cache_clear()
    allowlist_mod.skops_trusted_types.cache_clear()
    frozen = frozenset(tuple(pair) for pair in allowlist)
    allowlist_mod.sklearn_estimator_globals = lambda: frozen  # the server's list, computed by the parent
    conn.send(run(kind, path, out_dir))
    conn.close()


def run(kind: str, path: str, out_dir: str) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    try:
        if kind in ("pickle", "joblib"):
            result = convert_pickle(path, out_dir)
        elif kind == "skops":
            result = check_skops(path)
        elif kind == "onnx":
            result = check_onnx(path)
        elif kind in ("xgboost", "lightgbm"):
            result = load_booster(kind, path, out_dir)
        else:
            raise Refused(f"unknown kind {kind}")
        payload = {"ok": True, **result}
    except MemoryError:
        payload = {"ok": False, "error": "The model needs more memory than the loader's limit"}
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent as a refusal
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        if type(exc).__name__ not in ("Refused", "ScanRejected", "InflateRefused", "BoosterRejected"):
            message = f"The model could not be loaded: {type(exc).__name__}: {message}"
        payload = {"ok": False, "error": message[:2000]}
    return payload


def main(argv: list[str]) -> int:
    kind, path, out_dir, memory, cpu = argv[1], argv[2], argv[3], int(argv[4]), int(argv[5])
    _limit(memory, cpu)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    payload = run(kind, path, out_dir)
    sys.stdout.write("\n" + json.dumps(payload) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

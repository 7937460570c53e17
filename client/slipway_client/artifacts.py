"""Model files the portal accepts without executing anything: skops, or XGBoost/LightGBM native files."""

from __future__ import annotations

import os
import tempfile

from .contract import final_estimator

XGBOOST_WRAPPERS = ("XGBClassifier", "XGBRegressor")
LIGHTGBM_WRAPPERS = ("LGBMClassifier", "LGBMRegressor")


def _library(model) -> str | None:
    cls = type(model)
    root = cls.__module__.split(".")[0]
    if root == "xgboost" and cls.__name__ in XGBOOST_WRAPPERS:
        return "xgboost"
    if root == "lightgbm" and cls.__name__ in LIGHTGBM_WRAPPERS:
        return "lightgbm"
    return None


def native_format(model) -> str | None:
    """"xgboost" / "lightgbm" when the model itself (not a Pipeline) is a booster wrapper whose labels are
    0..K-1 (the native files keep no label names) or a regressor; else None (use skops)."""
    library = _library(model)
    if library is None or final_estimator(model) is not model:
        return None
    classes = getattr(model, "classes_", None)
    if classes is not None:
        try:
            if [int(c) for c in classes] != list(range(len(classes))) or any(isinstance(c, str) for c in classes):
                return None
        except (TypeError, ValueError):
            return None
    return library


def serialize(model, fmt: str = "auto") -> tuple[bytes, str, str]:
    """(bytes, file name, format). ``fmt``: "auto" (native for a bare XGBoost/LightGBM wrapper with 0..K-1
    labels, else skops), "skops", "xgboost" or "lightgbm"."""
    if fmt == "auto":
        fmt = native_format(model) or "skops"
    if fmt == "skops":
        import skops.io as sio

        return sio.dumps(model), "model.skops", "skops"
    if fmt == "xgboost":
        if _library(model) != "xgboost":
            raise ValueError("format='xgboost' needs an XGBClassifier or XGBRegressor")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.ubj")
            model.save_model(path)
            with open(path, "rb") as fh:
                return fh.read(), "model.ubj", "xgboost"
    if fmt == "lightgbm":
        if _library(model) != "lightgbm":
            raise ValueError("format='lightgbm' needs an LGBMClassifier or LGBMRegressor")
        return model.booster_.model_to_string().encode("utf-8"), "model.txt", "lightgbm"
    raise ValueError(f"Unknown format {fmt!r} (auto, skops, xgboost, lightgbm)")

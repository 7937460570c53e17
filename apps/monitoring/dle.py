"""Direct loss estimation (DLE) for regressors: MAE and RMSE of a window without its labels. Pure
(numpy/pandas/scikit-learn), no Django.

On the reference rows (features, the model's prediction, the true target) two gradient-boosting
models (scikit-learn's ``HistGradientBoostingRegressor``) learn the row's absolute error and squared
error from the features and the prediction. In a window, the estimated MAE is the mean predicted
absolute error and the estimated RMSE the square root of the mean predicted squared error. Like
CBPE, it assumes the error given the inputs does not change (covariate shift, not concept drift).

Each estimate has a sampling error (the reference's per-row error spread over ``sqrt(n)``: how far the
realized figure of a window of ``n`` rows falls from its expectation by chance), a band (estimate ∓
``band_sd``·sampling error) and alert thresholds learned from the realized metric over the reference's
chunks of the window size (mean ∓ ``k``·sd). To keep the estimate honest the loss models are fitted on
one half of the reference rows and the thresholds and spreads measured on the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .performance import BandedMetric, chunk_thresholds, reference_chunks


@dataclass(frozen=True)
class DLEModel:
    features: tuple[str, ...]
    categories: dict  # categorical feature -> {value: code}
    abs_model: object
    sq_model: object
    abs_sd: float  # sd of per-row absolute errors on the held-out reference half
    sq_sd: float
    thresholds: dict  # "mae"/"rmse" -> (lower, upper)
    held_errors: np.ndarray | None = None  # the held-out half's errors (prediction - target), in order


def design_matrix(frame: pd.DataFrame, features, categories: dict | None = None) -> tuple[np.ndarray, dict]:
    """Numeric columns as floats, text columns as integer codes (unseen → NaN); returns (X, categories)."""
    categories = dict(categories or {})
    cols = []
    for f in features:
        col = frame[f]
        if f in categories or col.dtype == object or str(col.dtype).startswith(("str", "string", "category")):
            vocab = categories.setdefault(f, {v: i for i, v in enumerate(sorted({str(x) for x in col.dropna()}))})
            cols.append(np.array([vocab.get(str(v), np.nan) if v is not None else np.nan for v in col], dtype=float))
        else:
            cols.append(pd.to_numeric(col, errors="coerce").to_numpy(dtype=float))
    return (np.column_stack(cols) if cols else np.empty((len(frame), 0))), categories


def _fit(X: np.ndarray, target: np.ndarray, cat_mask: np.ndarray, seed: int):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return HistGradientBoostingRegressor(max_iter=200, learning_rate=0.1, random_state=seed,
                                             categorical_features=cat_mask if cat_mask.any() else None
                                             ).fit(X, target)


def _with_prediction(X: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return np.column_stack([X, pred])


def dle_fit(design: tuple[np.ndarray, dict], predictions, targets, *, features: tuple[str, ...], chunk_size: int,
            k: float = 3.0, seed: int = 0) -> DLEModel | None:
    """Fit the loss models on half of the reference rows; thresholds and spreads on the other half."""
    X, categories = design
    pred = np.asarray(predictions, dtype=float)
    y = np.asarray(targets, dtype=float)
    n = y.size
    if n < 100:
        return None
    Xp = _with_prediction(X, pred)
    cat_mask = np.array([f in categories for f in features] + [False])
    half = n // 2
    err = pred - y
    abs_model = _fit(Xp[:half], np.abs(err[:half]), cat_mask, seed)
    sq_model = _fit(Xp[:half], err[:half] ** 2, cat_mask, seed)
    held = err[half:]
    model = DLEModel(features, categories, abs_model, sq_model, float(np.std(np.abs(held))),
                     float(np.std(held ** 2)), {}, held)
    return dle_with_thresholds(model, chunk_size=chunk_size, k=k)


def dle_with_thresholds(model: DLEModel, *, chunk_size: int, k: float = 3.0) -> DLEModel:
    """The model with alert thresholds for windows of ``chunk_size`` rows: the realized MAE and RMSE over
    the held-out reference half's chunks, mean ∓ k·sd (the loss models do not depend on the size)."""
    from dataclasses import replace

    held = model.held_errors if model.held_errors is not None else np.empty(0)
    chunks = reference_chunks(held.size, chunk_size)
    mae = [float(np.mean(np.abs(held[c]))) for c in chunks]
    rmse = [math.sqrt(float(np.mean(held[c] ** 2))) for c in chunks]
    return replace(model, thresholds={"mae": chunk_thresholds(mae, k=k, lower_bound=0.0, upper_bound=None),
                                      "rmse": chunk_thresholds(rmse, k=k, lower_bound=0.0, upper_bound=None)})


def dle_estimate(model: DLEModel, frame: pd.DataFrame, predictions, *, band_sd: float = 3.0) -> dict[str, BandedMetric]:
    """Estimated MAE and RMSE of a window (``frame`` has the model's features, ``predictions`` its output)."""
    pred = np.asarray(predictions, dtype=float)
    n = int(pred.size)
    if n == 0:
        return {}
    X, _ = design_matrix(frame, model.features, model.categories)
    Xp = _with_prediction(X, pred)
    abs_hat = np.clip(model.abs_model.predict(Xp), 0.0, None)
    sq_hat = np.clip(model.sq_model.predict(Xp), 0.0, None)
    mae = float(abs_hat.mean())
    mse = float(sq_hat.mean())
    rmse = math.sqrt(mse)
    se_mae = model.abs_sd / math.sqrt(n)
    se_mse = model.sq_sd / math.sqrt(n)
    se_rmse = se_mse / (2 * rmse) if rmse > 0 else 0.0  # delta method
    out = {}
    for name, value, se in (("mae", mae, se_mae), ("rmse", rmse, se_rmse)):
        lo_t, hi_t = model.thresholds.get(name, (None, None))
        out[name] = BandedMetric(name, value, se, max(0.0, value - band_sd * se), value + band_sd * se, n, lo_t, hi_t)
    return out

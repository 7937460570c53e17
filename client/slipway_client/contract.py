"""What the model and its holdout DataFrame already say: task, classes, and the input contract."""

from __future__ import annotations

import numpy as np
import pandas as pd


def final_estimator(model):
    """The last step of a scikit-learn Pipeline (the model itself otherwise)."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def infer_task(model) -> str:
    """"binary_classification" | "multiclass_classification" | "regression" from the fitted model."""
    from sklearn.base import is_classifier

    classes = getattr(model, "classes_", None)
    if is_classifier(model) or classes is not None:
        if classes is None:
            raise ValueError("The classifier has no classes_: fit it before registering it")
        return "binary_classification" if len(classes) == 2 else "multiclass_classification"
    return "regression"


def feature_names(model, X) -> list[str]:
    """The model's input columns in the order it takes them (``feature_names_in_``), else X's columns."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        names = getattr(final_estimator(model), "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    raise ValueError("The model does not record its feature names: pass X_holdout as a pandas DataFrame whose "
                     "columns are the model's inputs, in order")


def feature_type(series: pd.Series) -> str:
    """The contract type of one column: bool, int, float, else str (text and categories)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "str"


def infer_contract(model, X: pd.DataFrame) -> list[dict]:
    """``[{"name", "type"[, "nullable"]}]`` in the model's column order, typed from X's dtypes."""
    if not isinstance(X, pd.DataFrame):
        raise ValueError("X_holdout must be a pandas DataFrame (its columns and dtypes give the contract)")
    names = feature_names(model, X)
    missing = [n for n in names if n not in X.columns]
    if missing:
        raise ValueError(f"X_holdout lacks the model's feature(s): {', '.join(missing)}")
    contract = []
    for name in names:
        item = {"name": name, "type": feature_type(X[name])}
        if X[name].isna().any():
            item["nullable"] = True
        contract.append(item)
    return contract


def json_value(value):
    """A JSON-ready Python value from a pandas/numpy cell (missing values become null)."""
    if value is None:
        return None
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def rows(X, names: list[str] | None = None) -> list[dict]:
    """Rows of a DataFrame (or a list of dicts) as JSON-ready dicts, in ``names`` order when given."""
    if isinstance(X, pd.DataFrame):
        frame = X[names] if names else X
        cols = [str(c) for c in frame.columns]
        return [{c: json_value(v) for c, v in zip(cols, rec, strict=True)}
                for rec in frame.itertuples(index=False, name=None)]
    if isinstance(X, dict):
        return [{k: json_value(v) for k, v in X.items()}]
    return [{k: json_value(v) for k, v in dict(r).items()} for r in X]

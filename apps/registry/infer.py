"""Read a model's input contract from the artifacts (pure: scikit-learn objects and pandas, no Django).

Sources, strongest first:

1. the model: ``feature_names_in_`` (names and order); inside a ``ColumnTransformer`` (also nested in a
   ``Pipeline``) the column lists of each transformer — a ``OneHotEncoder``/``OrdinalEncoder`` says the
   column is categorical with the encoder's ``categories_`` (text categories → ``string``, integer
   categories → ``int`` declared categorical), with the unknown-category policy ``refuse`` (declare
   ``"unknown": "pass"`` to let other values through to an encoder that ignores them); numeric transformers (scalers, …) say "number";
   imputers say "nullable";
2. the data file (the training data, else the holdout without its target): its dtypes (bool, integer,
   float, text, datetime) and whether a column has missing values.

Every inferred feature carries ``source`` and ``why`` (dropped by :func:`clean`) so a contradiction with a
declared contract can be explained.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .contract import ContractSpecError, normalize_contract

ENCODERS = frozenset({"OneHotEncoder", "OrdinalEncoder", "TargetEncoder"})
NUMERIC_TRANSFORMERS = frozenset({
    "StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "PowerTransformer", "QuantileTransformer",
    "KBinsDiscretizer", "PolynomialFeatures", "Normalizer", "SplineTransformer", "Binarizer",
})
IMPUTERS = frozenset({"SimpleImputer", "KNNImputer", "IterativeImputer", "MissingIndicator"})


def _names(columns, feature_names: list[str] | None) -> list[str] | None:
    """A ColumnTransformer column spec as names (None when it cannot be resolved)."""
    if isinstance(columns, str):
        return [columns]
    if callable(columns):
        return None
    if isinstance(columns, slice):
        return list(feature_names[columns]) if feature_names is not None else None
    try:
        items = list(columns)
    except TypeError:
        return [feature_names[int(columns)]] if feature_names is not None else None
    if not items:
        return []
    if all(isinstance(c, str) for c in items):
        return items
    if feature_names is None:
        return None
    if all(isinstance(c, (bool, np.bool_)) for c in items):
        return [n for n, keep in zip(feature_names, items, strict=False) if keep]
    if all(isinstance(c, (int, np.integer)) for c in items):
        return [feature_names[int(c)] for c in items]
    return None


def _encoder_hints(encoder, columns: list[str], hints: dict) -> None:
    cats_list = getattr(encoder, "categories_", None)
    if cats_list is None:
        return
    # Unknown categories are refused by default (strict serving), even when the encoder would ignore them:
    # declare "unknown": "pass" to let them through (monitoring then counts them as unseen).
    policy = "refuse"
    name = type(encoder).__name__
    for column, cats in zip(columns, cats_list, strict=False):
        values = [c for c in list(cats) if not (c is None or (isinstance(c, float) and np.isnan(c)))]
        has_missing = len(values) != len(cats)
        hint = hints.setdefault(column, {})
        if values and all(isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer())
                          for v in values) and not any(isinstance(v, (bool, np.bool_)) for v in values):
            hint.update(type="int", categorical=True, categories=[int(v) for v in values])
        elif values and all(isinstance(v, (bool, np.bool_)) for v in values):
            hint.update(type="bool")
        else:
            hint.update(type="string", categories=[str(v) for v in values])
        if name != "TargetEncoder":
            hint["unknown"] = policy
        else:
            hint.pop("categories", None)
        hint["why"] = f"{name} categories"
        if has_missing:
            hint["nullable"] = True


def _walk(est, columns: list[str] | None, hints: dict) -> None:
    """Collect per-column hints from the part of the model that sees the raw columns."""
    name = type(est).__name__
    if name == "Pipeline":
        for _, step in est.steps:
            if step is None or step == "passthrough":
                continue
            _walk(step, columns, hints)
            sname = type(step).__name__
            if sname not in IMPUTERS:
                break  # later steps see transformed columns, not the raw ones
        return
    if name == "ColumnTransformer":
        feature_names = [str(n) for n in getattr(est, "feature_names_in_", [])] or columns
        for _, trans, cols in getattr(est, "transformers_", []):
            names = _names(cols, feature_names)
            if not names or isinstance(trans, str):
                continue
            _walk(trans, names, hints)
        return
    if columns is None:
        return
    if name in ENCODERS:
        _encoder_hints(est, columns, hints)
    elif name in NUMERIC_TRANSFORMERS:
        for column in columns:
            hint = hints.setdefault(column, {})
            hint.setdefault("type", "float")
            hint.setdefault("why", f"{name} treats it as a number")
    elif name in IMPUTERS:
        for column in columns:
            hints.setdefault(column, {})["nullable"] = True


def model_hints(estimator) -> tuple[list[str] | None, dict]:
    """(feature names in order or None, {column: hint}) read from the model alone."""
    raw = getattr(estimator, "feature_names_in_", None)
    names = [str(n) for n in raw] if raw is not None else None
    hints: dict = {}
    try:
        _walk(estimator, names, hints)
    except Exception:  # noqa: BLE001 - an unusual model: its names are still useful
        hints = {}
    return names, hints


def frame_types(df: pd.DataFrame) -> dict:
    """{column: {"type", "nullable", "also"?}} from a data file's dtypes."""
    out = {}
    for name in df.columns:
        s = df[name]
        kind = s.dtype.kind
        nullable = bool(s.isna().any())
        item: dict = {"nullable": nullable, "why": f"the data file's column is {s.dtype}"}
        if kind == "b":
            item.update(type="bool", also=["number"])
        elif kind in "iu":
            item["type"] = "int"
            if set(pd.unique(s.dropna())) <= {0, 1}:
                item["also"] = ["bool"]
        elif kind == "f":
            finite = s.dropna()
            item["type"] = "float"
            if len(finite) and set(pd.unique(finite)) <= {0.0, 1.0}:
                item["also"] = ["bool"]
        elif kind == "M":
            item["type"] = "datetime"
        else:
            present = s.dropna()
            if len(present) and all(isinstance(v, (bool, np.bool_)) for v in present):
                item.update(type="bool", also=["number"])
            else:
                item["type"] = "string"
        out[str(name)] = item
    return out


def found_contract(estimator, frame: pd.DataFrame | None, *, exclude: tuple = ()) -> tuple[list[dict], list[str]]:
    """The contract the artifacts say, with ``source``/``why`` per feature, and the sources used.

    Raises ContractSpecError when the names cannot be read from anything."""
    names, hints = model_hints(estimator) if estimator is not None else (None, {})
    data = frame_types(frame.drop(columns=[c for c in exclude if c in frame.columns])) if frame is not None else {}
    sources = []
    if names is not None:
        sources.append("the model's feature_names_in_")
    elif frame is not None:
        n_in = getattr(estimator, "n_features_in_", None)
        names = [c for c in data]
        if n_in is not None and int(n_in) != len(names):
            raise ContractSpecError(f"The model does not record its feature names (fit it on a pandas DataFrame) and "
                                    f"takes {int(n_in)} features, while the data file has {len(names)} columns "
                                    "besides the target: declare the contract")
        sources.append("the data file's columns")
    else:
        raise ContractSpecError("The contract cannot be inferred: the model does not record its feature names "
                                "(fit it on a pandas DataFrame) and no holdout or training data was uploaded")
    if hints:
        sources.append("the model's column transformers")
    if data:
        sources.append("the data file's dtypes")
    out = []
    for name in names:
        hint, dtype = hints.get(name, {}), data.get(name)
        item: dict = {"name": name}
        if "type" in hint and "categories" in hint:
            item.update({k: v for k, v in hint.items() if k in ("type", "categorical", "categories", "unknown")})
            item.update(source="model", why=hint.get("why", ""))
        elif dtype is not None:
            item.update(type=dtype["type"], source="data", why=dtype["why"])
            if dtype.get("also"):
                item["also"] = dtype["also"]
        elif "type" in hint:
            item.update(type=hint["type"], source="model", why=hint.get("why", ""))
            if hint.get("categorical"):
                item["categorical"] = True
        else:
            item.update(type="float", source="default", why="")
        item["nullable"] = bool(hint.get("nullable") or (dtype or {}).get("nullable"))
        out.append(item)
    return out, sources


def clean(found: list[dict]) -> list[dict]:
    """The found contract without its explanations, in canonical form."""
    keep = ("name", "type", "nullable", "categorical", "categories", "unknown")
    return normalize_contract([{k: v for k, v in f.items() if k in keep} for f in found])


def infer_contract(estimator, frame: pd.DataFrame | None, *, exclude: tuple = ()) -> tuple[list[dict], list[str]]:
    found, sources = found_contract(estimator, frame, exclude=exclude)
    return clean(found), sources


PREVIEW_VALUES = 12


def preview_from_frame(frame: pd.DataFrame, *, exclude: tuple = ()) -> list[dict]:
    """What a data file alone says about the contract (the upload form's preview, before any model is read):
    one item per column besides ``exclude`` — ``name``, ``type``, ``nullable``, ``why`` and, for text
    columns, ``seen`` (up to 12 distinct values, most frequent first) and ``n_seen``. The worker later
    takes names and order from the model and categories from its encoders (:func:`found_contract`)."""
    found, _sources = found_contract(None, frame, exclude=exclude)
    out = []
    for item in found:
        row = {k: item[k] for k in ("name", "type", "nullable", "why")}
        if item["type"] == "string":
            counts = frame[item["name"]].dropna().astype(str).value_counts()
            row["seen"] = [str(v) for v in counts.index[:PREVIEW_VALUES]]
            row["n_seen"] = int(counts.size)
        out.append(row)
    return out


def check_frame_against(frame: pd.DataFrame, declared: list[dict], *, exclude: tuple = ()) -> dict:
    """A data file (read with the declared types) against a declared contract, for the upload form:
    ``features`` — per declared feature its ``status`` ("ok", "missing", "warning"), what the file holds
    and the ``notes`` on it; ``refused`` — what makes validation refuse the file (a contract feature the
    file lacks); ``ignored`` — the file's columns the contract does not name (left out of serving)."""
    features, refused = [], []
    names = {c["name"] for c in declared}
    for c in declared:
        name, typ = c["name"], c.get("type") or "float"
        row = {"name": name, "type": typ, "nullable": bool(c.get("nullable")), "notes": []}
        if name not in frame.columns:
            row["status"] = "missing"
            row["notes"].append("not in the file: validation refuses it")
            refused.append(f"the file lacks the contract feature {name!r}")
            features.append(row)
            continue
        col = frame[name]
        empty = int(col.isna().sum())
        row["empty"] = empty
        if empty and not c.get("nullable"):
            row["notes"].append(f"{empty} empty cell(s) in a feature that is not nullable: serving refuses such "
                                "rows (422)")
        if typ == "string":
            counts = col.dropna().astype(str).value_counts()
            row["seen"] = [str(v) for v in counts.index[:PREVIEW_VALUES]]
            row["n_seen"] = int(counts.size)
            known = c.get("categories")
            if known:
                outside = [str(v) for v in counts.index if str(v) not in {str(k) for k in known}]
                if outside:
                    policy = "serving refuses them (422)" if (c.get("unknown") or "refuse") == "refuse" \
                        else "serving passes them and monitoring counts them as unseen"
                    row["notes"].append(f"{len(outside)} value(s) outside the declared categories "
                                        f"({', '.join(outside[:5])}{' …' if len(outside) > 5 else ''}): {policy}")
        elif typ in ("float", "int") and col.notna().any():
            row["range"] = [f"{float(col.min()):.6g}", f"{float(col.max()):.6g}"]
        row["status"] = "warning" if row["notes"] else "ok"
        features.append(row)
    ignored = [str(n) for n in frame.columns if n not in names and n not in exclude]
    return {"features": features, "refused": refused, "ignored": ignored}

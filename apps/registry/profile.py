"""Reference profile of a model's inputs and outputs: the drift baseline monitoring compares against.

Pure module: numpy + pandas only, no Django. ``build_reference_profile`` returns a JSON-serialisable
dict, stored on ``ModelVersion.reference_profile``::

    {
      "version": 1,
      "n_rows": 500,                          # rows of the reference data (holdout or training file)
      "source": "holdout" | "training" | "", # set by the caller (the registry), informational
      "features": {
        "<feature name>": <column profile>,   # one per contract feature, in contract order
        ...
      },
      "prediction": <column profile> | null,  # the model's output on the same rows
      "sample": {...}                         # optional (added for monitoring): a bounded raw sample of
                                              # the rows, see ``reference_sample``
    }

A column profile is one of::

    numeric (contract type float, or int not declared categorical; the prediction of a regressor; the positive-class score of a
    binary classifier):
    {
      "kind": "numeric",
      "n": 500,                 # non-missing values
      "missing_rate": 0.02,     # share of rows that are missing (NaN/None/±inf) in [0, 1]
      "min": .., "max": .., "mean": .., "std": ..,   # null when every value is missing
      "quantiles": [q_0, q_0.001, ..., q_1],         # 1001 floats at numpy.linspace(0, 1, 1001)
                                                     # (linear interpolation); [] when all missing
      "histogram": {"edges": [e_0, ..., e_k],        # k+1 <= 21 strictly increasing edges: the unique
                                                     # values of the 5 % quantiles (0, .05, ..., 1)
                    "counts": [c_1, ..., c_k]}       # reference rows per bin; bins are [e_i, e_i+1),
                                                     # the last one closed; sum(counts) == n
    }

    datetime features (contract type datetime) are profiled as numeric on seconds since 1970-01-01 UTC, with
    ``"type": "datetime"`` and ``"unit": "epoch_seconds"``; monitoring converts the logged ISO 8601 values the
    same way (``apps.registry.contract.epoch_seconds``).

    categorical (contract type bool/string, or int declared categorical; the label of a multiclass classifier; the label of a binary
    classifier without probabilities):
    {
      "kind": "categorical",
      "n": 500, "missing_rate": 0.0,
      "frequencies": {"<value as str>": count, ...}  # booleans as "True"/"False"; counts sum to n
    }

How monitoring uses it: the quantiles are the reference's empirical quantile function, enough to
compute a KS statistic or a 1-D Wasserstein distance against a current window without the raw
reference data (``quantile_grid()`` gives the probabilities); the histogram edges and counts give PSI
bins (extend the outer edges to -inf/+inf for current data outside the reference range); the
frequencies give PSI / chi-square for categories (unseen current categories are new bins).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PROFILE_VERSION = 1
N_QUANTILES = 1001
HISTOGRAM_PROBS = np.linspace(0.0, 1.0, 21)
NUMERIC_TYPES = frozenset({"float", "int"})
CATEGORICAL_TYPES = frozenset({"bool", "str", "string"})


def canonical_type(value) -> str:
    from .contract import canonical_type as canon

    return canon(value) or "float"


def _categorical(column: dict) -> bool:
    """Typed columns decide: string and bool features, and int features declared categorical, are
    profiled as categories; float and plain int features as numbers."""
    from .contract import is_categorical

    return is_categorical(column)
MAX_CATEGORIES = 1000  # beyond this the rarest categories are folded into "__other__"


def quantile_grid() -> np.ndarray:
    """The probabilities at which ``quantiles`` are given: numpy.linspace(0, 1, 1001)."""
    return np.linspace(0.0, 1.0, N_QUANTILES)


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def profile_numeric(values) -> dict:
    """Profile of a numeric column (see the module docstring)."""
    arr = pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    total = int(arr.size)
    finite = arr[np.isfinite(arr)]
    n = int(finite.size)
    out: dict = {"kind": "numeric", "n": n, "missing_rate": float(1 - n / total) if total else 0.0}
    if n == 0:
        out.update({"min": None, "max": None, "mean": None, "std": None, "quantiles": [],
                    "histogram": {"edges": [], "counts": []}})
        return out
    quantiles = np.quantile(finite, quantile_grid())
    edges = np.unique(np.quantile(finite, HISTOGRAM_PROBS))
    if edges.size == 1:  # a constant column: one closed bin [v, v]
        edges = np.array([edges[0], edges[0]])
        counts = np.array([n])
    else:
        counts, _ = np.histogram(finite, bins=edges)
    out.update({
        "min": _finite_or_none(finite.min()),
        "max": _finite_or_none(finite.max()),
        "mean": _finite_or_none(finite.mean()),
        "std": _finite_or_none(finite.std(ddof=0)),
        "quantiles": [float(q) for q in quantiles],
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    })
    return out


def _category_label(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)


def profile_categorical(values) -> dict:
    """Profile of a categorical column (see the module docstring)."""
    series = pd.Series(values, dtype="object")
    total = int(series.size)
    present = series[~series.isna()]
    n = int(present.size)
    counts: dict[str, int] = {}
    for value, count in present.map(_category_label).value_counts().items():
        counts[str(value)] = int(count)
    if len(counts) > MAX_CATEGORIES:
        ordered = sorted(counts.items(), key=lambda kv: -kv[1])
        kept = dict(ordered[: MAX_CATEGORIES - 1])
        kept["__other__"] = sum(c for _, c in ordered[MAX_CATEGORIES - 1:])
        counts = kept
    return {"kind": "categorical", "n": n, "missing_rate": float(1 - n / total) if total else 0.0,
            "frequencies": counts}


def prediction_column(predictions=None, probabilities=None) -> tuple[str, np.ndarray] | None:
    """What the prediction profile describes: ("numeric", positive-class score) for a binary
    classifier with probabilities, ("numeric", value) for a regressor (float predictions, no
    probabilities), ("categorical", label) otherwise."""
    if probabilities is not None:
        proba = np.asarray(probabilities)
        if proba.ndim == 2 and proba.shape[1] == 2:
            return "numeric", proba[:, 1]
    if predictions is None:
        return None
    preds = np.asarray(predictions)
    if preds.ndim == 2 and preds.shape[1] == 1:
        preds = preds[:, 0]
    if probabilities is None and preds.dtype.kind == "f":
        return "numeric", preds
    return "categorical", preds


def reference_sample(df: pd.DataFrame, contract: list[dict], *, rows: int = 1000, seed: int = 0, scores=None,
                     labels=None) -> dict:
    """A bounded, seeded raw sample of the reference rows (added for monitoring; backwards-compatible).

    Monitoring's domain classifier (multivariate drift) needs joint rows, not marginals; CBPE needs
    the model's positive-class ``scores`` and the true ``labels`` to calibrate on. Shape::

        {"n": k, "features": {name: [value or null, ...]}, "score": [...] | absent, "label": [...] | absent}
    """
    n = len(df)
    k = min(n, max(int(rows), 0))
    idx = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False)) if k < n else np.arange(n)
    features = {}
    for column in contract:
        name = column["name"]
        if canonical_type(column.get("type", "float")) == "datetime":
            continue
        values = df[name].to_numpy()[idx]
        if not _categorical(column):
            arr = pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").to_numpy(dtype="float64",
                                                                                               na_value=np.nan)
            features[name] = [float(v) if math.isfinite(v) else None for v in arr]
        else:
            features[name] = [None if pd.isna(v) else _category_label(v) for v in values]
    out: dict = {"n": int(k), "features": features}
    if scores is not None:
        out["score"] = [float(v) for v in np.asarray(scores, dtype=float)[idx]]
    if labels is not None:
        out["label"] = [_category_label(v) for v in np.asarray(labels, dtype=object)[idx]]
    return out


def build_reference_profile(df: pd.DataFrame, contract: list[dict], predictions=None, probabilities=None, *,
                            labels=None, sample_rows: int = 1000, seed: int = 0) -> dict:
    """Profile every contract feature of ``df`` (and the model output, when given); see the docstring.

    ``contract`` is the model's input contract ``[{"name": ..., "type": "float"|"int"|"bool"|"str"}]``;
    a feature missing from ``df`` raises ``KeyError`` naming it.
    """
    missing = [c["name"] for c in contract if c["name"] not in df.columns]
    if missing:
        raise KeyError(f"reference data lacks feature(s): {', '.join(missing)}")
    features = {}
    for column in contract:
        name = column["name"]
        typ = canonical_type(column.get("type", "float"))
        values = df[name].to_numpy()
        if typ == "datetime":  # drift on the time line: seconds since 1970-01-01 UTC (KS, PSI, Wasserstein)
            from .contract import epoch_seconds

            entry = profile_numeric(epoch_seconds(values))
            entry["unit"] = "epoch_seconds"
        else:
            entry = profile_categorical(values) if _categorical(column) else profile_numeric(values)
        entry["type"] = typ
        features[name] = entry
    prediction = None
    chosen = prediction_column(predictions, probabilities)
    if chosen is not None:
        kind, values = chosen
        prediction = profile_numeric(values) if kind == "numeric" else profile_categorical(values)
    profile = {"version": PROFILE_VERSION, "n_rows": int(len(df)), "source": "", "features": features,
               "prediction": prediction}
    if sample_rows:
        scores = chosen[1] if chosen is not None and chosen[0] == "numeric" and probabilities is not None else None
        profile["sample"] = reference_sample(df, contract, rows=sample_rows, seed=seed, scores=scores, labels=labels)
    return profile


def reference_rows(df: pd.DataFrame, contract: list[dict], *, predictions=None, probabilities=None, labels=None,
                   max_rows: int = 100_000) -> tuple[bytes, dict]:
    """The reference rows monitoring learns from, as Parquet bytes, and a description for the profile.

    Columns: the contract features, ``__pred`` (the model's output as text for a classifier, the value
    for a regressor), ``__score`` (positive-class probability of a binary classifier) and ``__label``
    (the true label as text, or the numeric target of a regressor) when known. Rows keep their order
    (monitoring cuts reference chunks from it); at most ``max_rows``, the first ones. Monitoring
    calibrates CBPE, learns performance thresholds and fits DLE and the PCA drift model on them.
    """
    import io

    n = min(len(df), int(max_rows))
    out = pd.DataFrame({c["name"]: df[c["name"]].to_numpy()[:n] for c in contract})
    for column in contract:
        if column.get("type", "float") in NUMERIC_TYPES:
            out[column["name"]] = pd.to_numeric(out[column["name"]], errors="coerce").astype("float64")
        else:
            out[column["name"]] = [None if pd.isna(v) else _category_label(v) for v in out[column["name"]]]
    chosen = prediction_column(predictions, probabilities)
    regression = chosen is not None and chosen[0] == "numeric" and probabilities is None
    if predictions is not None:
        preds = np.asarray(predictions)
        preds = preds[:, 0] if preds.ndim == 2 and preds.shape[1] == 1 else preds
        out["__pred"] = preds[:n].astype(float) if regression else [_category_label(v) for v in preds[:n]]
    if chosen is not None and chosen[0] == "numeric" and probabilities is not None:
        out["__score"] = np.asarray(chosen[1], dtype=float)[:n]
    if labels is not None:
        lab = list(labels)[:n]
        out["__label"] = np.asarray(lab, dtype=float) if regression else [_category_label(v) for v in lab]
    buf = io.BytesIO()
    out.to_parquet(buf, index=False)
    return buf.getvalue(), {"n": int(n), "truncated": bool(len(df) > n), "labelled": labels is not None,
                            "columns": list(out.columns)}

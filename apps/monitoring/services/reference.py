"""What monitoring learns from a model version's reference rows (``reference_profile["rows"]``: the
labelled holdout when there is one, up to ``MONITORING_REFERENCE_MAX_ROWS`` rows, stored as Parquet at
registration): the CBPE calibrator, the performance alert thresholds and sampling-error components,
the DLE loss model and the PCA drift model. Everything is per version — a new production version
brings its own — and cached in the process by (version, artifact key, window size, k).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apps.common.storage import artifact_store

from .. import dle, drift, performance

log = logging.getLogger(__name__)

_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 16


def _cached(key, build):
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = build()
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def reference_rows(version) -> pd.DataFrame | None:
    """The version's reference rows (None for versions registered without them)."""
    info = (version.reference_profile or {}).get("rows") or {}
    key = info.get("key")
    if not key:
        return None

    def load():
        try:
            return pd.read_parquet(artifact_store().path(key))
        except (OSError, ValueError):
            log.warning("reference rows %s of version %s cannot be read", key, version.pk)
            return None

    return _cached(("rows", version.pk, key), load)


def _positive(version):
    classes = version.classes or []
    return classes[-1] if len(classes) == 2 else None


def label_text(value) -> str:
    """A label as text, the way the reference rows store it (booleans True/False, integral floats as int)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class BinaryReference:
    calibrator: performance.Calibrator
    source: str
    n: int
    thresholds: dict  # metric -> (lower, upper), learned on reference chunks of the window size
    components: dict  # metric -> (sd, fraction): NannyML-style sampling-error components


def binary_reference(version, *, manual: dict | None, chunk_size: int, k: float) -> BinaryReference | None:
    """CBPE calibrator + thresholds of a binary classifier's version. The calibrator: a manual one fitted
    for this version (``calibration_fit``), else isotonic on every labelled reference row, else on the
    profile's 1,000-row sample (older versions)."""
    positive = _positive(version)
    if positive is None:
        return None
    rows = reference_rows(version)
    key = ("binary", version.pk, ((version.reference_profile or {}).get("rows") or {}).get("key"), chunk_size, k,
           (manual or {}).get("version_id") == version.pk and str(manual.get("x", ""))[:64])

    def build():
        y = p = s = None
        if rows is not None and {"__label", "__score", "__pred"} <= set(rows.columns):
            ok = rows["__label"].notna() & rows["__score"].notna()
            y = (rows.loc[ok, "__label"].astype(str) == label_text(positive)).to_numpy()
            p = (rows.loc[ok, "__pred"].astype(str) == label_text(positive)).to_numpy()
            s = rows.loc[ok, "__score"].to_numpy(dtype=float)
        if manual and manual.get("version_id") == version.pk:
            cal, source = performance.Calibrator.from_dict(manual), manual.get("source") or "manual"
        elif y is not None and y.size >= 50 and 0 < y.sum() < y.size:
            cal, source = performance.calibrator_fit(s, y.astype(int)), f"reference rows ({y.size:,})"
        else:
            sample = (version.reference_profile or {}).get("sample") or {}
            scores, labels = sample.get("score"), sample.get("label")
            if not scores or not labels or len(scores) != len(labels):
                return None
            yy = np.array([label_text(v) == label_text(positive) for v in labels])
            if yy.size < 50 or not 0 < yy.sum() < yy.size:
                return None
            cal, source = performance.calibrator_fit(scores, yy.astype(int)), f"profile sample ({yy.size:,})"
        thresholds, components = {}, {}
        if y is not None and y.size:
            thresholds = performance.binary_reference_thresholds(y, p, s, chunk_size=chunk_size, k=k)
            components = performance.reference_sampling_components(y, p, s)
        return BinaryReference(cal, source, int(y.size) if y is not None else 0, thresholds, components)

    return _cached(key, build)


def regression_reference(version, *, chunk_size: int, k: float):
    """The DLE loss models of a regressor's version (fitted once per version) with thresholds for windows
    of ``chunk_size`` rows (None without labelled reference rows)."""
    rows = reference_rows(version)
    if rows is None or not {"__label", "__pred"} <= set(rows.columns):
        return None
    rkey = version.reference_profile["rows"].get("key")

    def build():
        features = [c for c in rows.columns if not c.startswith("__")]
        ok = rows["__label"].notna() & rows["__pred"].notna()
        frame = rows.loc[ok]
        return dle.dle_fit(dle.design_matrix(frame, features), frame["__pred"].to_numpy(dtype=float),
                           frame["__label"].to_numpy(dtype=float), features=tuple(features),
                           chunk_size=chunk_size, k=k)

    model = _cached(("dle", version.pk, rkey), build)
    if model is None:
        return None
    return _cached(("dle-thresholds", version.pk, rkey, chunk_size, k),
                   lambda: dle.dle_with_thresholds(model, chunk_size=chunk_size, k=k))


def pca_reference(version, *, numeric: list[str], chunk_size: int, thresholds: drift.Thresholds):
    """The PCA drift model on the numeric block of the reference rows (or of the profile's sample)."""
    rows = reference_rows(version)
    rkey = ((version.reference_profile or {}).get("rows") or {}).get("key")
    key = ("pca", version.pk, rkey, tuple(numeric), chunk_size, thresholds.threshold_sd, thresholds.pca_variance)

    def build():
        if rows is not None and all(c in rows.columns for c in numeric):
            cols = {c: rows[c].to_numpy(dtype=float) for c in numeric}
        else:
            sample = ((version.reference_profile or {}).get("sample") or {}).get("features") or {}
            if not all(c in sample for c in numeric):
                return None
            cols = {c: np.array([np.nan if v is None else v for v in sample[c]], dtype=float) for c in numeric}
        return drift.pca_fit(cols, variance=thresholds.pca_variance, chunk_size=chunk_size, k=thresholds.threshold_sd)

    return _cached(key, build)

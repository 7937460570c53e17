"""Reading, typing and describing uploaded tables (pure: polars only, no Django).

``read_table`` is the portal's one parser (``apps.common.tabular``: CSV or Parquet by content, duplicate
column names refused, only the empty cell null unless the upload names more tokens, declared types
enforced, conservative inference for the rest). ``check_schema_compatible`` keeps a source's column types
across versions. ``column_stats`` gives per-column statistics with a histogram or top values, used by
the view page's distributions and by training-set reports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl

from apps.common import tabular as common_tabular
from apps.common.tabular import TYPES, TableError, conform, value_type

from .pit import PitError


def read_table(path: str | Path, *, filename: str = "", types: Mapping[str, str] | None = None,
               null_values: Iterable[str] | None = None) -> tuple[pl.DataFrame, str]:
    """Read and type an uploaded table with the portal's one parser (``apps.common.tabular``).

    Returns (frame, "csv" | "parquet"); raises TableError naming the column (and rows)."""
    return common_tabular.read_table(path, filename=filename, types=types, null_values=null_values)


def schema_of(df: pl.DataFrame) -> list[dict]:
    return [{"name": c, "type": value_type(t)} for c, t in df.schema.items()]


def check_schema_compatible(old: list[dict], new: list[dict]) -> None:
    """Refuse type changes between versions of one source (names the first changed column)."""
    new_types = {c["name"]: c["type"] for c in new}
    for col in old:
        t = new_types.get(col["name"])
        if t is not None and t != col["type"]:
            raise TableError(
                f"Column {col['name']!r} changed type from {col['type']} to {t}; a source keeps its column types "
                f"across versions (create a new source for a different schema)", column=col["name"])


def require_columns(old: list[dict], new: list[dict], needed: set[str]) -> None:
    """Refuse a new version that drops a column a feature view reads."""
    have = {c["name"] for c in new}
    for name in sorted(needed - have):
        raise TableError(f"Column {name!r} is read by a feature view but missing from the new file", column=name)


def column_stats(df: pl.DataFrame, *, bins: int = 20, top: int = 10) -> dict:
    """Per column: type, count, nulls, null_rate, distinct; numbers: min/max/mean/std + histogram;
    strings/bools: top values; datetimes: min/max."""
    out: dict = {}
    n = df.height
    for name, dtype in df.schema.items():
        s = df.get_column(name)
        t = value_type(dtype)
        nulls = int(s.null_count())
        info: dict = {"type": t, "count": n, "nulls": nulls, "null_rate": round(nulls / n, 6) if n else 0.0}
        try:
            info["distinct"] = int(s.n_unique())
        except pl.exceptions.PolarsError:
            pass
        nn = s.drop_nulls()
        if t in ("int", "float") and len(nn):
            f = nn.cast(pl.Float64)
            f = f.filter(f.is_finite())
            if len(f):
                info.update(min=_num(f.min()), max=_num(f.max()), mean=_num(f.mean()), std=_num(f.std() or 0.0))
                info["hist"] = histogram(f, bins=bins)
        elif t == "datetime" and len(nn):
            info.update(min=nn.min().isoformat(), max=nn.max().isoformat())
        elif t in ("string", "bool") and len(nn):
            vc = nn.cast(pl.String).value_counts(sort=True).head(top)
            info["top"] = [{"value": v, "count": int(c)} for v, c in vc.iter_rows()]
        out[name] = info
    return out


def histogram(values: pl.Series, *, bins: int = 20) -> dict:
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return {"edges": [lo, hi], "counts": [len(values)]}
    width = (hi - lo) / bins
    idx = ((values - lo) / width).floor().cast(pl.Int64).clip(0, bins - 1)
    counts = idx.value_counts().sort(idx.name)
    arr = [0] * bins
    for b, c in counts.iter_rows():
        arr[int(b)] = int(c)
    return {"edges": [lo + i * width for i in range(bins + 1)], "counts": arr}


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


__all__ = ["TYPES", "TableError", "PitError", "conform", "value_type", "read_table", "schema_of",
           "check_schema_compatible", "column_stats"]

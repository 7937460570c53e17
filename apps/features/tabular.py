"""Reading, typing and describing uploaded tables (pure: polars only, no Django).

``read_table`` accepts CSV or Parquet (by content: Parquet files start with ``PAR1``), refuses empty
files and files without rows, and types every column as one of string/int/float/bool/datetime (datetimes
normalised to UTC). ``column_stats`` gives per-column statistics with a histogram or top values, used by
the view page's distributions and by training-set reports.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from .pit import PitError, normalize_timestamps


class TableError(ValueError):
    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


TYPES = ("string", "int", "float", "bool", "datetime")


def value_type(dtype: pl.DataType) -> str | None:
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype == pl.Boolean:
        return "bool"
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return "datetime"
    if dtype in (pl.String, pl.Utf8, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "string"
    if dtype == pl.Null:
        return "string"
    return None


def read_table(path: str | Path, *, filename: str = "") -> tuple[pl.DataFrame, str]:
    """Read and type an uploaded table. Returns (frame, "csv" | "parquet"); raises TableError."""
    path = Path(path)
    size = path.stat().st_size
    label = filename or path.name
    if size == 0:
        raise TableError(f"{label} is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(8192)
    fmt = "parquet" if head[:4] == b"PAR1" else "csv"
    if fmt == "csv" and b"\x00" in head:
        raise TableError(f"{label} is not a CSV or Parquet file (it has binary content)")
    try:
        if fmt == "parquet":
            df = pl.read_parquet(path)
        else:
            df = pl.read_csv(path, try_parse_dates=True, infer_schema_length=10000, null_values=["", "NA", "null"])
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise TableError(f"{label} could not be read as {fmt.upper()}: {str(exc).splitlines()[0][:300]}") from exc
    if df.width == 0:
        raise TableError(f"{label} has no columns")
    blank = [c for c in df.columns if not c.strip()]
    if blank:
        raise TableError(f"{label} has a column without a name (position {df.columns.index(blank[0]) + 1})")
    if df.height == 0:
        raise TableError(f"{label} has a header but no rows")
    for name, dtype in df.schema.items():
        if value_type(dtype) is None:
            raise TableError(f"Column {name!r} has an unsupported type {dtype} (use string, number, bool or timestamp)",
                             column=name)
    if df.schema.get(df.columns[0]) == pl.Null and df.width == 1:
        raise TableError(f"{label} has no data")
    casts = {c: pl.String for c, t in df.schema.items() if t == pl.Null or t == pl.Categorical}
    if casts:
        df = df.cast(casts)
    dt_cols = [c for c, t in df.schema.items() if value_type(t) == "datetime"]
    if dt_cols:
        df = normalize_timestamps(df, dt_cols)
    return df, fmt


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


__all__ = ["TableError", "PitError", "read_table", "schema_of", "check_schema_compatible", "column_stats"]

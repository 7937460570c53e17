"""One parser for every uploaded table (pure: polars and the standard library, no Django).

Sources, label files, holdouts, training data and outcome files are all read here, so the same file means
the same thing wherever it is uploaded. The rules, for CSV and Parquet alike:

- **Format by content**: Parquet files start with ``PAR1``; everything else is read as UTF-8 CSV. Empty
  files, files with a header but no rows and binary non-Parquet content are refused.
- **Column names**: a blank or duplicate column name is refused (polars would silently rename a CSV's
  duplicate ``amt`` to ``amt_duplicated_0``; the CSV header is read with the ``csv`` module first).
- **Nulls**: only the empty cell is null. More tokens are per upload (``null_values=["NA"]``); "NA" is
  otherwise Namibia's country code, a string. In Parquet the tokens apply to string columns.
- **Declared types are the law** (``types={"customer_id": "string", "amount": "float"}``): a declared
  column is never inferred. Text is parsed strictly: a value that does not fit is refused naming the
  column and its rows; a non-integral number for an ``int`` column is refused, never truncated; leading
  zeros of a ``string`` column stay. Typed (Parquet) columns convert only losslessly: int→float,
  int→string, integral float→int; anything else is refused naming the column.
- **Undeclared columns are inferred conservatively** from their text: ``int`` only when every value is a
  plain integer without leading zeros (``007`` stays a string), then ``float``, ``bool`` (true/false),
  ``datetime`` (ISO-like dates, converted to UTC), else ``string``. A column mixing numbers and text is a
  string column; declare its type to have the mixture refused.

``read_table`` returns ``(polars.DataFrame, "csv" | "parquet")``; ``conform`` applies declared types to a
frame that is already in memory (a pandas or polars frame handed over by a notebook). Both raise
``TableError`` with ``column`` and ``rows`` (1-based data rows) set when they are known.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl

from .edge import text_problem

TYPES = ("string", "int", "float", "bool", "datetime")
TS = pl.Datetime("us", "UTC")
MAX_ROWS_NAMED = 5

_INT_PLAIN = r"^[+-]?(0|[1-9][0-9]*)$"                       # inference: no leading zeros
_FLOAT_PLAIN = r"^[+-]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_INT_TEXT = r"^[+-]?[0-9]+(\.0*)?$"                          # declared int: "007" and "3.0" are integers
_FLOAT_TEXT = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$|^(?i:[+-]?(nan|inf|infinity))$"
_BOOL_TEXT = r"^(?i:true|false)$"
_BOOL_DECLARED = r"^(?i:true|false|1|0|yes|no)$"
_DATE_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$"


class TableError(ValueError):
    """A table that cannot be accepted; ``column`` and ``rows`` (1-based data rows) name the culprit."""

    def __init__(self, message: str, column: str | None = None, rows: list[int] | None = None):
        super().__init__(message)
        self.column = column
        self.rows = list(rows or [])


def value_type(dtype: pl.DataType) -> str | None:
    """The portal's type of a polars dtype (None: not supported)."""
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype == pl.Boolean:
        return "bool"
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return "datetime"
    if dtype in (pl.String, pl.Utf8, pl.Categorical, pl.Null) or isinstance(dtype, pl.Enum):
        return "string"
    return None


def sniff_format(head: bytes) -> str:
    return "parquet" if head[:4] == b"PAR1" else "csv"


# --- reading ----------------------------------------------------------------------------------------


def read_table(path: str | Path, *, filename: str = "", types: Mapping[str, str] | None = None,
               null_values: Iterable[str] | None = None, max_rows: int | None = None) -> tuple[pl.DataFrame, str]:
    """Read, check and type an uploaded table (see the module docstring). Raises TableError."""
    path = Path(path)
    label = filename or path.name
    if path.stat().st_size == 0:
        raise TableError(f"{label} is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(8192)
    fmt = sniff_format(head)
    tokens = _tokens(null_values)
    types = _check_types(types)
    if fmt == "csv":
        if b"\x00" in head:
            raise TableError(f"{label} is not a CSV or Parquet file (it has binary content)")
        columns = csv_header(path, label=label)
        check_column_names(columns, label=label)
        try:
            df = pl.read_csv(path, infer_schema=False, null_values=tokens or None,
                             n_rows=(max_rows + 1) if max_rows else None, raise_if_empty=False)
        except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
            raise TableError(f"{label} could not be read as CSV: {_first_line(exc)}") from exc
    else:
        try:
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path)
            check_column_names(list(meta.schema_arrow.names), label=label)
            if max_rows and meta.metadata.num_rows > max_rows:
                raise TableError(f"{label} has {meta.metadata.num_rows:,} rows (limit {max_rows:,})")
            df = pl.read_parquet(path)
        except TableError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable Parquet file is the uploader's error
            raise TableError(f"{label} could not be read as PARQUET: {_first_line(exc)}") from exc
        if tokens:
            df = df.with_columns([pl.when(pl.col(c).is_in(tokens)).then(None).otherwise(pl.col(c)).alias(c)
                                  for c, t in df.schema.items() if t in (pl.String, pl.Utf8)])
    if df.width == 0:
        raise TableError(f"{label} has no columns")
    if df.height == 0:
        raise TableError(f"{label} has a header but no rows")
    if max_rows and df.height > max_rows:
        raise TableError(f"{label} has more than {max_rows:,} rows")
    _refuse_unstorable_text(df, label)
    return conform(df, types, label=label, infer=True), fmt


def _refuse_unstorable_text(df: pl.DataFrame, label: str) -> None:
    """A NUL character in a column name or a text cell cannot be stored (``apps.common.edge``); polars
    strings are valid UTF-8, so unpaired surrogates cannot occur here."""
    for name in df.columns:
        if text_problem(name):
            raise TableError(f"{label}: a column name {text_problem(name)}", column=name)
    for name, dtype in df.schema.items():
        if dtype in (pl.String, pl.Utf8):
            hits = df.get_column(name).str.contains("\x00", literal=True)
            if hits.any():
                rows = [int(i) + 1 for i in hits.arg_true()[:MAX_ROWS_NAMED]]
                raise TableError(f"Column {name!r}, row {rows[0]}: a value must not contain a NUL character "
                                 "(\\u0000)", column=name, rows=rows)


def csv_header(path: Path, *, label: str = "") -> list[str]:
    """The CSV's column names exactly as written (no renaming of duplicates)."""
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh), [])
    except UnicodeDecodeError as exc:
        raise TableError(f"{label or path.name} is not UTF-8 text: {_first_line(exc)}") from exc
    except csv.Error as exc:
        raise TableError(f"{label or path.name} has an unreadable header: {_first_line(exc)}") from exc


def check_column_names(columns: list[str], *, label: str) -> None:
    if not columns:
        raise TableError(f"{label} has no columns")
    for i, name in enumerate(columns):
        if not str(name).strip():
            raise TableError(f"{label} has a column without a name (position {i + 1})")
    seen: dict[str, int] = {}
    for i, name in enumerate(columns):
        if name in seen:
            raise TableError(f"{label} has two columns named {name!r} (positions {seen[name] + 1} and {i + 1}); "
                             f"column names must be unique", column=name)
        seen[name] = i


# --- typing -----------------------------------------------------------------------------------------


def conform(df, types: Mapping[str, str] | None = None, *, label: str = "the file", infer: bool = True) -> pl.DataFrame:
    """Apply declared ``types`` to ``df`` (polars or pandas) and type the rest (see the module docstring).

    ``infer=True`` types undeclared text columns conservatively; ``infer=False`` leaves them as they are.
    Datetime columns come back in UTC (naive values are UTC). Raises TableError naming column and rows.
    """
    if not isinstance(df, pl.DataFrame):
        check_column_names([str(c) for c in df.columns], label=label)
        try:
            df = pl.from_pandas(df)
        except Exception as exc:  # noqa: BLE001 - a mixed-type object column, typically: name it
            for name in df.columns:
                try:
                    pl.from_pandas(df[[name]])
                except Exception:  # noqa: BLE001
                    kinds = sorted({type(v).__name__ for v in df[name].dropna()})
                    raise TableError(f"Column {name!r} of {label} mixes value types ({', '.join(kinds)})",
                                     column=str(name)) from exc
            raise TableError(f"{label} has a column polars cannot read: {_first_line(exc)}") from exc
    types = _check_types(types)
    exprs: list[pl.Expr] = []
    text_cols = []
    for name, dtype in df.schema.items():
        want = types.get(name)
        if want is not None:
            exprs.append(_declared(df, name, dtype, want, label))
        elif dtype in (pl.String, pl.Utf8) and infer:
            text_cols.append(name)
        elif dtype == pl.Null or dtype == pl.Categorical or isinstance(dtype, pl.Enum):
            exprs.append(pl.col(name).cast(pl.String))
        elif value_type(dtype) == "datetime":
            exprs.append(_utc(pl.col(name), dtype))
        elif value_type(dtype) is None:
            raise TableError(f"Column {name!r} has an unsupported type {dtype} (use string, number, bool or "
                             f"timestamp)", column=name)
    if exprs:
        df = df.with_columns(exprs)
    if text_cols:
        df = df.with_columns(_infer(df.select(text_cols)).get_columns())
    return df


def infer_text_types(df: pl.DataFrame) -> dict[str, str]:
    """The conservative type of each text column of ``df`` (see the module docstring)."""
    cols = [c for c, t in df.schema.items() if t in (pl.String, pl.Utf8)]
    if not cols:
        return {}
    counts = df.select([pl.col(c).is_not_null().sum() for c in cols]).row(0)
    tested = [c for c, n in zip(cols, counts, strict=True) if n]
    out = dict.fromkeys(cols, "string")
    if not tested:
        return out
    patterns = (("int", _INT_PLAIN), ("float", _FLOAT_PLAIN), ("bool", _BOOL_TEXT), ("datetime", _DATE_TEXT))
    checks: dict[str, dict[str, bool]] = {}
    if len(tested) > 64:  # wide: one pass over the cells in long form instead of one expression per column
        long = df.select(tested).unpivot(variable_name="c", value_name="v").drop_nulls("v")
        agg = long.group_by("c").agg([pl.col("v").str.contains(p).all().alias(k) for k, p in patterns])
        for k, _ in patterns:
            checks[k] = dict(zip(agg.get_column("c").to_list(), agg.get_column(k).to_list(), strict=True))
    else:
        for k, pattern in patterns:
            row = df.select([pl.col(c).str.contains(pattern).all() for c in tested]).row(0)
            checks[k] = dict(zip(tested, row, strict=True))
    for c in tested:
        for kind in ("int", "float", "bool", "datetime"):
            if checks[kind][c]:
                out[c] = kind
                break
    return out


def _infer(df: pl.DataFrame) -> pl.DataFrame:
    kinds = infer_text_types(df)
    exprs = []
    for name, kind in kinds.items():
        if kind == "int":
            exprs.append(pl.col(name).cast(pl.Int64, strict=True))
        elif kind == "float":
            exprs.append(pl.col(name).cast(pl.Float64, strict=True))
        elif kind == "bool":
            exprs.append(pl.col(name).str.to_lowercase() == "true")
    try:
        out = df.with_columns(exprs) if exprs else df
    except pl.exceptions.PolarsError:  # an integer beyond 64 bits: that column is a float column
        out = df.with_columns([e for e in exprs if e.meta.output_name() not in _overflowing(df, kinds)])
        out = out.with_columns([pl.col(c).cast(pl.Float64) for c in _overflowing(df, kinds)])
    dates = {}
    for name in (c for c, k in kinds.items() if k == "datetime"):
        s = df.get_column(name)
        parsed = parse_timestamps(s)
        if not (s.is_not_null() & parsed.is_null()).any():  # date-like but not a date (2024-13-45): text
            dates[name] = parsed
    return out.with_columns(list(dates.values())) if dates else out


def _overflowing(df: pl.DataFrame, kinds: dict[str, str]) -> list[str]:
    return [c for c, k in kinds.items() if k == "int"
            and df.get_column(c).cast(pl.Int64, strict=False).null_count() > df.get_column(c).null_count()]


def _declared(df: pl.DataFrame, name: str, dtype: pl.DataType, want: str, label: str) -> pl.Expr:
    have = value_type(dtype)
    s = df.get_column(name)
    if dtype == pl.Null:
        return pl.col(name).cast({"string": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean,
                                  "datetime": TS}[want])
    if dtype in (pl.String, pl.Utf8) or dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        return _from_text(s.cast(pl.String), name, want).alias(name)
    if want == have:
        if want == "int":
            return pl.col(name).cast(pl.Int64)
        if want == "float":
            return pl.col(name).cast(pl.Float64)
        if want == "datetime":
            return _utc(pl.col(name), dtype)
        return pl.col(name)
    if want == "float" and have == "int":
        return pl.col(name).cast(pl.Float64)
    if want == "string" and have == "int":
        return pl.col(name).cast(pl.String)
    if want == "int" and have == "float":
        f = s.cast(pl.Float64)
        bad = (f.is_not_null() & (f.is_nan() | f.is_infinite() | (f != f.floor()))).fill_null(False)
        if bad.any():
            raise _bad_rows(name, bad, s, "is declared int but holds non-integral numbers (never truncated)")
        return pl.col(name).cast(pl.Float64).cast(pl.Int64)
    raise TableError(f"Column {name!r} of {label} holds {have} values but is declared {want}", column=name)


def _from_text(s: pl.Series, name: str, want: str) -> pl.Series:
    if want == "string":
        return s
    present = s.is_not_null()
    if want == "datetime":
        out = parse_timestamps(s)
        bad = present & out.is_null()
        if bad.any():
            raise _bad_rows(name, bad, s, "is declared datetime but holds values that are not timestamps")
        return out
    pattern = {"int": _INT_TEXT, "float": _FLOAT_TEXT, "bool": _BOOL_DECLARED}[want]
    bad = present & ~s.str.strip_chars().str.contains(pattern).fill_null(False)
    if bad.any():
        if want == "int":
            numeric = s.filter(bad).str.strip_chars().str.contains(_FLOAT_TEXT).all()
            what = ("non-integral numbers (never truncated)" if numeric else "values that are not integers")
        else:
            what = "text" if want == "float" else "values that are not true/false"
        raise _bad_rows(name, bad, s, f"is declared {want} but holds {what}")
    t = s.str.strip_chars()
    if want == "int":
        return t.str.replace(r"\.0*$", "").cast(pl.Int64, strict=True)
    if want == "float":
        return t.cast(pl.Float64, strict=True)
    low = t.str.to_lowercase()
    return pl.select(pl.when(low.is_null()).then(None).otherwise(low.is_in(["true", "1", "yes"]))).to_series()


def _bad_rows(name: str, bad: pl.Series, values: pl.Series, what: str) -> TableError:
    idx = bad.arg_true().head(MAX_ROWS_NAMED).to_list()
    examples = ", ".join(f"{values[i]!r} in row {i + 1}" for i in idx)
    n = int(bad.sum())
    more = f" and {n - len(idx)} more" if n > len(idx) else ""
    return TableError(f"Column {name!r} {what}: {examples}{more}", column=name, rows=[i + 1 for i in idx])


# --- timestamps -------------------------------------------------------------------------------------


def parse_timestamps(s: pl.Series) -> pl.Series:
    """Parse ISO-like strings to UTC datetimes; values with an offset (or Z) are converted, others taken as
    UTC. Unparseable values become null (callers compare null counts to name them)."""
    stripped = s.cast(pl.String).str.strip_chars()
    has_offset = stripped.str.contains(r"([+-]\d\d:?\d\d|Z)$").fill_null(False)
    result = pl.Series(s.name, [None] * len(s), dtype=TS)
    for mask, aware in ((has_offset, True), (~has_offset, False)):
        idx = mask.arg_true()
        if len(idx) == 0:
            continue
        part = stripped.gather(idx)
        try:
            parsed = (part.str.to_datetime(time_unit="us", time_zone="UTC", strict=False) if aware
                      else part.str.to_datetime(time_unit="us", strict=False).dt.replace_time_zone("UTC"))
        except pl.exceptions.PolarsError:  # no single format polars can infer
            continue
        result = result.scatter(idx, parsed)
    return result


def _utc(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    expr = expr.dt.replace_time_zone("UTC") if dtype.time_zone is None else expr.dt.convert_time_zone("UTC")
    return expr.dt.cast_time_unit("us")


# --- helpers ----------------------------------------------------------------------------------------


def parse_null_values(text: str | Iterable[str] | None) -> list[str]:
    """Null tokens from a form/API field: a JSON list or comma-separated text (``NA, null``)."""
    if text is None:
        return []
    if not isinstance(text, str):
        return _tokens(text)
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        import json

        try:
            items = json.loads(text)
        except ValueError as exc:
            raise TableError(f"null_values is not a JSON list: {exc}") from exc
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise TableError("null_values must be a list of strings")
        return _tokens(items)
    return _tokens(next(csv.reader(io.StringIO(text), skipinitialspace=True), []))


def parse_types(value: str | Mapping[str, str] | None) -> dict[str, str]:
    """Declared column types from a form/API field: a JSON object or ``col:type, col:type`` text."""
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return _check_types(value)
    text = value.strip()
    if text.startswith("{"):
        import json

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TableError(f"column_types is not a JSON object: {exc}") from exc
        if not isinstance(data, dict):
            raise TableError("column_types must be an object of column → type")
        return _check_types(data)
    out = {}
    for part in filter(None, (p.strip() for p in re.split(r"[,\n]", text))):
        name, sep, kind = part.rpartition(":")
        if not sep or not name.strip():
            raise TableError(f"{part!r} is not column:type (e.g. customer_id:string)")
        out[name.strip()] = kind.strip()
    return _check_types(out)


def _check_types(types: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for name, kind in (types or {}).items():
        kind = str(kind).strip().lower()
        if kind not in TYPES:
            raise TableError(f"Type {kind!r} of column {name!r} is not one of {', '.join(TYPES)}", column=name)
        out[str(name)] = kind
    return out


def _tokens(values: Iterable[str] | None) -> list[str]:
    out = []
    for v in values or []:
        if not isinstance(v, str):
            raise TableError("Null tokens are strings")
        if v != "" and v not in out:
            out.append(v)
    return out


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


_INT_KEY = re.compile(_INT_TEXT)


def canonical_key(value, kind: str) -> str:
    """One entity key as the store holds it (its text), read by the entity's declared type.

    ``int``: integers, integral floats and integer text (``"007"`` → ``"7"``); ``1.5``, ``"1.9"`` and
    ``"abc"`` are refused (ValueError), never truncated. ``string``: text as given (``"007"`` stays), an
    integer as its digits; other values are refused.
    """
    if type(value) is str and kind != "int":
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not an entity key")
    if kind == "int":
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if value.is_integer():
                return str(int(value))
            raise ValueError(f"{value!r} is not an integer key (never truncated)")
        if isinstance(value, str) and _INT_KEY.match(value.strip()):
            return str(int(value.strip().split(".")[0]))
        raise ValueError(f"{value!r} is not an integer key")
    if isinstance(value, int):
        return str(value)
    raise ValueError(f"{value!r} is not a {kind} key")

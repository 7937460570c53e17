"""Point-in-time join of feature views to labelled events (pure: polars only, no Django, no clock).

The rule, for one label row (entity key k, event time T) and one view:

    available_at(row) = max(row.event_time + lag, row.written_at)      (written_at only if the view has one)
    candidates        = rows of entity k with available_at <= T           (inclusive: a value is usable
                                                                           exactly at t + lag)
    chosen            = the candidate with the greatest event_time; ties broken by the greatest
                        written_at, then by the last row in file order
    value             = chosen's features if T - chosen.event_time <= ttl (inclusive), else null ("expired")
    no candidate      → null ("missing"; includes unknown entities)

Every label row is kept, in its original order. All timestamps are normalised to UTC first (naive values
are taken as UTC). The join is a chain of small steps, each testable on a five-row frame:

    normalize_timestamps → prepare_view (availability + "best row so far" index) → asof_rows → attach_features
    → apply_ttl

``feature_vector_as_of`` (used by materialization for the online store) runs the very same chain with one
synthetic label row per entity at time T, so the online store and the offline join share one code path;
the online lookup then applies ``ttl_expired`` — the same TTL rule — at lookup time. A lookup ``as_of`` a
past time runs ``point_in_time_join`` itself (``with_status=True``).

The as-of step: for a view without written-at (availability = event + lag) whose keys fit, one int64 key
per (entity, availability) (``KeyIndex``: a dense table over the key space with a running maximum when
that space is at most ~2× the rows, else the keys sorted — a value sort of packed keys — and a binary
search per label); otherwise polars' ``join_asof`` by entity on the availability order (``prepare_view``'s
``right``). All choose the same row (tests compare them with a brute-force reference). An index key gives
the chosen row's availability (and event time) back, so only the feature columns are gathered.

With ``leakage=True`` the join also reports what naive joins would have leaked (``leakage_report``); without
a written-at column the report reuses the join's availability order and rides in the join's own as-of
(at T + lag, and each entity's newest row), so the job's join costs little more than the join alone
(``bench/pit_join.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from apps.common.tabular import parse_timestamps

TS = pl.Datetime("us", "UTC")
_ROW = "__pit_row"        # label row number (restores the label order)
_T = "__pit_t"            # label time, UTC
_AVAIL = "__pit_avail"    # availability of a feature row
_EVENT = "__pit_event"    # event time of a feature row
_ORDER = "__pit_order"    # rank of a feature row by (entity, event time, written at, file order)
_BEST = "__pit_best"      # greatest _ORDER among rows available so far (per entity)


class PitError(ValueError):
    """Bad input to the join; ``column`` names the offending column."""

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class ViewSpec:
    """What the join needs to know about one feature view."""

    name: str
    entity_column: str                 # column of the feature frame that holds the entity key
    label_key: str                     # column of the label frame that holds the same key
    timestamp_column: str
    features: tuple[tuple[str, str], ...]  # (source column, output column)
    lag: timedelta = timedelta(0)
    ttl: timedelta | None = None
    written_at_column: str | None = None

    def columns(self) -> list[str]:
        """The columns of the feature frame the join reads (a source may hold more)."""
        written = [self.written_at_column] if self.written_at_column else []
        return list(dict.fromkeys([self.entity_column, self.timestamp_column, *written, *(c for c, _ in self.features)]))


@dataclass(frozen=True)
class ViewReport:
    view: str
    matched: int       # rows that got a value
    expired: int       # rows whose latest available value was older than the TTL
    missing: int       # rows with no available value at all (incl. unknown entities)


@dataclass(frozen=True)
class PitResult:
    frame: pl.DataFrame
    views: tuple[ViewReport, ...]
    rows_without_features: int
    leakage: dict = field(default_factory=dict)


# --- step 1: timestamps ------------------------------------------------------------------------


def normalize_timestamps(df: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Cast ``columns`` to UTC datetimes. Naive values are UTC; strings are parsed; offsets converted.

    Raises PitError naming the column when a value cannot be parsed (nulls stay nulls).
    """
    exprs = []
    for col in columns:
        if col not in df.columns:
            raise PitError(f"Column {col!r} is missing", column=col)
        dtype = df.schema[col]
        if isinstance(dtype, pl.Datetime):
            expr = pl.col(col)
            expr = expr.dt.replace_time_zone("UTC") if dtype.time_zone is None else expr.dt.convert_time_zone("UTC")
            exprs.append(expr.dt.cast_time_unit("us").alias(col))
        elif dtype == pl.Date:
            exprs.append(pl.col(col).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias(col))
        elif dtype in (pl.String, pl.Utf8):
            parsed = _parse_strings(df.get_column(col))
            bad = df.get_column(col).is_not_null() & parsed.is_null()
            if bad.any():
                idx = int(bad.arg_max())
                raise PitError(
                    f"Column {col!r} has {int(bad.sum())} value(s) that are not timestamps, "
                    f"e.g. {df.get_column(col)[idx]!r} in row {idx + 1}", column=col)
            df = df.with_columns(parsed.alias(col))
        else:
            raise PitError(f"Column {col!r} must hold timestamps (found {dtype})", column=col)
    return df.with_columns(exprs) if exprs else df


_parse_strings = parse_timestamps  # one timestamp parser for uploads and the join


# --- step 2: availability ----------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A view's rows ready for the as-of step.

    ``table``: the rows in file order (timestamps in UTC) with ``_EVENT`` and ``_AVAIL``;
    ``keys``: (``_ORIG`` = file row, entity, ``_EVENT``, ``_AVAIL`` [, written-at]) without null keys/times;
    ``right``: (entity, ``_AVAIL``, ``_BEST``) sorted by availability, where ``_BEST`` is the file row of
    the best row (greatest event time, then written-at, then file order) among the entity's rows available
    at or before that availability — for polars' ``join_asof``; or
    ``index``: the same rows as one sorted int64 key per (entity, availability) (``KeyIndex``), searched
    with ``np.searchsorted`` — views without written-at whose keys and times fit (one of the two is set).
    """

    table: pl.DataFrame
    keys: pl.DataFrame
    right: pl.DataFrame | None
    index: KeyIndex | None = None


@dataclass(frozen=True)
class KeyIndex:
    """A view's rows (no written-at: availability = event + lag) as int64 keys
    ``code(entity) * span + (availability - t0) // step``. ``step`` is the gcd of all availabilities - t0, so
    the division is exact: a label at T finds its row as the greatest key <= ``code * span + (T - t0) // step``
    of the same entity (a key >= ``code * span``), and that key gives the row's availability back
    (``t0 + (key - code * span) * step``) without touching the rows. Entity codes are ``key - kmin`` for
    integer keys, else positions in ``codes`` (the distinct keys). Ties on a key: the last row in file order
    (the join's tie-break). Two layouts:

    - dense (``filled`` set; the key space ``n_codes * span`` is at most a few times the rows, e.g. entities ×
      periodic snapshots): ``rows[key]`` = file row or -1, ``filled[key]`` = the greatest key <= key that has
      a row (-1: none) — built with one scatter and one running maximum, looked up with one gather;
    - sorted (``keys``): the distinct keys in order and ``rows`` their file rows, searched with
      ``np.searchsorted`` (a value sort of packed keys, else an argsort).

    Why: polars' ``join_asof(by=...)`` hashes the 1M-row right side per entity, and a stable sort by
    availability is a second full pass; the sorted keys are several times cheaper, the dense table cheaper
    still (``bench/pit_join.py``).
    """

    keys: np.ndarray | None
    rows: np.ndarray
    span: int
    t0: int
    step: int
    kmin: int | None             # integer keys: code = key - kmin
    n_codes: int
    codes: pl.DataFrame | None   # other keys: (key, "__pit_code")
    filled: np.ndarray | None = None
    wide: bool = False           # file rows need 64 bits


@dataclass(frozen=True)
class Picks:
    """The rows an as-of lookup chose, one per label: ``rows`` (file row; 0 where none), ``hit`` (a row was
    chosen) and ``avail`` (its availability, µs since the epoch; meaningless where none)."""

    rows: np.ndarray
    hit: np.ndarray
    avail: np.ndarray

    def series(self) -> pl.Series:
        """The chosen file rows as a polars index series, null where none."""
        rows = pl.Series(self.rows)
        return rows if self.hit.all() else \
            rows.to_frame("r").select(pl.when(pl.lit(pl.Series(self.hit))).then(pl.col("r"))).to_series()


_ORIG = "__pit_orig"


def prepare_view(features: pl.DataFrame, spec: ViewSpec, *, method: str = "auto") -> Prepared:
    """``method``: "auto" (a ``KeyIndex`` where it applies, else polars' as-of); "dense" / "sorted" /
    "argsort" / "asof" force the dense index, the sorted index built by a value sort or by an argsort, or
    the polars path (where they apply; tests check they agree)."""
    ts_cols = [spec.timestamp_column] + ([spec.written_at_column] if spec.written_at_column else [])
    cols = spec.columns()
    table = normalize_timestamps(features.select(cols), ts_cols)
    event = pl.col(spec.timestamp_column)
    avail = event + pl.duration(microseconds=_us(spec.lag))
    if spec.written_at_column:
        avail = pl.max_horizontal(avail, pl.col(spec.written_at_column).fill_null(avail))
    table = table.with_columns(event.alias(_EVENT), avail.alias(_AVAIL))
    extra = [spec.written_at_column] if spec.written_at_column else []
    keys = table.select(spec.entity_column, _EVENT, _AVAIL, *extra).with_row_index(_ORIG)
    if keys.get_column(spec.entity_column).null_count() or keys.get_column(_EVENT).null_count():
        keys = keys.filter(pl.col(spec.entity_column).is_not_null() & pl.col(_EVENT).is_not_null())
    if spec.written_at_column:
        # Availability is not monotone in event time: rank rows by (event, written-at, file order) — a
        # global rank orders each entity's rows correctly — and carry the best rank seen so far along
        # availability, per entity.
        ranked = keys.sort([_EVENT, spec.written_at_column], nulls_last=False, maintain_order=True) \
            .with_row_index(_ORDER)
        by_avail = ranked.select(spec.entity_column, _AVAIL, _ORDER).sort([_AVAIL, _ORDER])
        best_order = by_avail.select(pl.col(_ORDER).cum_max().over(spec.entity_column)).to_series()
        right = by_avail.select(spec.entity_column, _AVAIL).with_columns(
            ranked.get_column(_ORIG).gather(best_order).alias(_BEST))
    else:
        index = _key_index(keys, spec.entity_column, method) if method != "asof" else None
        if index is not None:
            return Prepared(table=table, keys=keys, right=None, index=index)
        # availability = event + lag grows with event time; a stable sort keeps file order among ties, and
        # the backward as-of join takes the last of tied rows, i.e. the last in file order.
        right = keys.select(spec.entity_column, _AVAIL, pl.col(_ORIG).alias(_BEST)).sort(_AVAIL, maintain_order=True)
    return Prepared(table=table, keys=keys, right=right)


_FIT = 1 << 62  # keys (and packed keys) must stay below this
_DENSE_FACTOR = 2  # a dense index when the key space is at most this many times the rows (+ _DENSE_MIN)
_DENSE_MIN = 1 << 16


def _key_index(keys: pl.DataFrame, key: str, method: str) -> KeyIndex | None:
    """The ``KeyIndex`` of ``keys`` (no null keys/times), or None when the keys do not fit in an int64.
    ``method``: "auto" (dense if the key space is small, else sorted), "dense", "sorted" or "argsort"
    (forced where they apply; tests check they agree). Works in place on fresh arrays where it can: every
    1M-element temporary is 8 MB of fresh pages."""
    m = keys.height
    if not m:
        return None
    ent = keys.get_column(key)
    kmin, codes = None, None
    if ent.dtype.is_integer():
        raw = ent.to_numpy()
        lo, hi = int(raw.min()), int(raw.max())
        if hi >= 1 << 63 or hi - lo >= _FIT:  # (label keys that wrap in int64 land outside 0..n_codes - 1)
            return None
        kmin, n_codes = lo, hi - lo + 1
        code = _owned(raw.astype(np.int64, copy=False))
        code -= kmin
    else:
        codes = ent.unique().to_frame().with_row_index("__pit_code")
        n_codes = codes.height
        code = keys.select(key).join(codes, on=key, how="left", maintain_order="left") \
            .get_column("__pit_code").to_numpy().astype(np.int64)
    rel = _owned(keys.get_column(_AVAIL).to_physical().to_numpy().astype(np.int64, copy=False))
    t0 = int(rel.min())
    rel -= t0
    step = int(np.gcd.reduce(rel)) or 1
    if step > 1:
        rel //= step
    span = int(rel.max()) + 1
    if n_codes * span >= _FIT:
        return None
    comp = np.multiply(code, span, out=code)
    comp += rel
    del rel
    orig = keys.get_column(_ORIG)
    n_rows = int(orig[-1]) + 1 if orig.is_sorted() else int(orig.max()) + 1  # file rows are < n_rows
    space = n_codes * span
    if (method == "dense" and space <= 1 << 24) or (method == "auto" and space <= _DENSE_FACTOR * m + _DENSE_MIN):
        dtype = np.int32 if max(space, n_rows) < 1 << 31 else np.int64
        rows = np.full(space, -1, dtype=dtype)
        file_rows = orig.to_numpy()  # (UInt32 or UInt64; the rows fit in dtype's positive half)
        np.maximum.at(rows, comp, file_rows.view(dtype) if file_rows.itemsize == rows.itemsize else file_rows.astype(dtype))
        # (ties: the last row in file order)
        filled = np.arange(space, dtype=dtype)
        filled[rows < 0] = -1
        np.maximum.accumulate(filled, out=filled)
        return KeyIndex(keys=None, rows=rows, span=span, t0=t0, step=step, kmin=kmin, n_codes=n_codes,
                        codes=codes, filled=filled, wide=n_rows > 1 << 32)
    bits = max(n_rows - 1, 1).bit_length()
    if method in ("auto", "sorted") and space << bits < _FIT:
        # unique keys (the file row in the low bits): a plain value sort in place, ties in file order
        comp <<= bits
        file_rows = orig.to_numpy()
        comp |= file_rows if file_rows.dtype == np.uint32 else file_rows.astype(np.int64)
        comp.sort()
        pos = comp & ((1 << bits) - 1)
        comp_sorted = np.right_shift(comp, bits, out=comp)
        last = np.empty(m, dtype=bool)            # the last (greatest file row) of each run of ties
        np.not_equal(comp_sorted[1:], comp_sorted[:-1], out=last[:-1])
        last[-1] = True
        if not last.all():
            pos, comp_sorted = pos[last], comp_sorted[last]
        rows = pos
    else:
        pos = np.argsort(comp)                    # unstable: ties resolved by the greatest row per run
        comp_sorted = comp[pos]
        first = np.empty(m, dtype=bool)
        first[0] = True
        np.not_equal(comp_sorted[1:], comp_sorted[:-1], out=first[1:])
        rows = orig.to_numpy().astype(np.int64)[pos]
        if not first.all():
            starts = np.flatnonzero(first)
            rows = np.maximum.reduceat(rows, starts)
            comp_sorted = comp_sorted[starts]
    return KeyIndex(keys=comp_sorted, rows=rows, span=span, t0=t0, step=step, kmin=kmin, n_codes=n_codes, codes=codes,
                    wide=n_rows > 1 << 32)


def _owned(values: np.ndarray) -> np.ndarray:
    """``values`` if this code may write to it (polars hands out zero-copy arrays read-only), else a copy."""
    return values if values.flags.writeable else values.copy()


def _index_rows(index: KeyIndex, keys: pl.Series, times: pl.Series, shifts: list[timedelta | None]) -> list[Picks]:
    """For each (key, time) and each shift: the row chosen from ``index`` (the last available at
    time + shift; shift None: the entity's newest row), with its availability. ``keys`` are in the view's
    key type. The keys' codes (and, for sorted keys, one sort of the queries) serve every shift (a query's
    order by (entity, time) is the same at any shift)."""
    n = len(keys)
    if index.kmin is not None:
        code = keys.fill_null(index.kmin).to_numpy().astype(np.int64) - index.kmin  # (nulls masked below)
        known = (code >= 0) & (code < index.n_codes)
        if keys.null_count():
            known &= keys.is_not_null().to_numpy()
    else:
        found = keys.to_frame("__k").join(index.codes.rename({index.codes.columns[1]: "__k"}), on="__k",
                                          how="left", maintain_order="left").get_column("__pit_code")
        known = found.is_not_null().to_numpy()
        code = found.fill_null(0).to_numpy().astype(np.int64)
    rel = times.to_physical().fill_null(index.t0).to_numpy().astype(np.int64) - index.t0
    if times.null_count():
        known &= times.is_not_null().to_numpy()
    code = np.where(known, code, 0)
    first = code * index.span                     # each entity's first key
    order, out = None, []
    for shift in shifts:
        if shift is None:
            units, ok = index.span - 1, known
        else:
            at = rel + _us(shift) if shift else rel
            ok = known & (at >= 0)
            units = np.minimum(np.maximum(at, 0) // index.step, index.span - 1)
        q = first + units
        if index.filled is not None:
            found_key = index.filled[q].astype(np.int64)        # -1: no key at all up to q
        else:
            if order is None:
                order = np.argsort(q)             # sorted queries: the search walks the keys once
            pos = np.empty(n, dtype=np.int64)
            pos[order] = np.searchsorted(index.keys, q[order], side="right") - 1
            before = pos < 0                      # q is below every key
            np.maximum(pos, 0, out=pos)
            found_key = index.keys[pos]
            found_key[before] = -1
        hit = ok & (found_key >= first)           # a key of the same entity
        key_at = np.where(hit, found_key, first)
        rows = index.rows[key_at] if index.filled is not None else index.rows[pos]
        rows = np.where(hit, rows, 0).astype(np.uint64 if index.wide else np.uint32)
        avail = (key_at - first) * index.step + index.t0
        out.append(Picks(rows=rows, hit=hit, avail=avail))
    return out


# --- step 3: as-of ------------------------------------------------------------------------------


def asof_rows(labels: pl.DataFrame, prepared: Prepared, spec: ViewSpec) -> pl.Series:
    """For each label row (with ``_ROW`` and ``_T``), the file row of the chosen feature row, or null."""
    return asof_rows_shifted(labels, prepared, spec, shifts=(timedelta(0),))[0]


def asof_rows_shifted(labels: pl.DataFrame, prepared: Prepared, spec: ViewSpec, *,
                      shifts: tuple[timedelta, ...]) -> list[pl.Series]:
    """``asof_rows`` at each label time + shift, in ONE as-of join (the feature rows are grouped once):
    the job's leakage report asks for the row chosen at T + lag as well (an as-of on event time)."""
    if prepared.index is not None:
        return [p.series() for p in index_picks(labels, prepared, spec, list(shifts))]
    key_dtype = prepared.right.schema[spec.entity_column]
    left = labels.select(_ROW, _T, match_keys(labels.get_column(spec.label_key), key_dtype, spec).alias("__pit_key"))
    n = len(left)
    if len(shifts) > 1 or shifts[0]:
        left = pl.concat([left.with_columns(pl.col(_T) + pl.duration(microseconds=_us(d)), pl.col(_ROW) + i * n)
                          if d else left.with_columns(pl.col(_ROW) + i * n) for i, d in enumerate(shifts)])
    right = prepared.right.rename({spec.entity_column: "__pit_key", _AVAIL: _T})
    joined = left.sort(_T).join_asof(right, on=_T, by="__pit_key", strategy="backward", check_sortedness=False)
    rows = _by_row(joined, _BEST, len(left))
    return [rows.slice(i * n, n) for i in range(len(shifts))]


def index_picks(labels: pl.DataFrame, prepared: Prepared, spec: ViewSpec,
                shifts: list[timedelta | None]) -> list[Picks]:
    """``asof_rows_shifted`` for a view with a ``KeyIndex``, with each chosen row's availability (shift
    None: each entity's newest row)."""
    keys = match_keys(labels.get_column(spec.label_key), prepared.keys.schema[spec.entity_column], spec)
    return _index_rows(prepared.index, keys, labels.get_column(_T), shifts)


def _by_row(frame: pl.DataFrame, column: str, n: int) -> pl.Series:
    """``frame[column]`` in ``_ROW`` order. ``_ROW`` numbers the ``n`` rows 0..n-1 in some order, so one
    scatter (linear) puts the values back where a sort would (several times faster on 100k+ rows)."""
    if frame.height != n:  # not a permutation of the rows (cannot happen for the joins here): sort
        return frame.sort(_ROW).get_column(column)
    values = frame.get_column(column)
    return values.clear(n).scatter(frame.get_column(_ROW), values)


def match_keys(keys: pl.Series, dtype: pl.DataType, spec: ViewSpec) -> pl.Series:
    """``keys`` in the view's key type, losslessly or not at all: integers of another width, or integral
    floats for integer keys, convert; a non-integral float or text that is not the same key is refused
    naming the rows (never truncated, never matched to another entity)."""
    if keys.dtype == dtype:
        return keys
    bad = None
    if dtype.is_integer() and keys.dtype.is_integer():
        return keys.cast(dtype)
    if dtype.is_integer() and keys.dtype.is_float():
        bad = keys.is_not_null() & (keys.is_nan() | keys.is_infinite() | (keys != keys.floor())).fill_null(True)
        if not bad.any():
            return keys.cast(dtype)
    elif dtype in (pl.String, pl.Utf8) and keys.dtype.is_integer():
        return keys.cast(pl.String)
    elif dtype.is_integer() and keys.dtype in (pl.String, pl.Utf8):
        out = keys.str.strip_chars().cast(dtype, strict=False)
        bad = keys.is_not_null() & (out.is_null() | (out.cast(pl.String) != keys.str.strip_chars()))
        if not bad.any():
            return out
    if bad is None:
        bad = keys.is_not_null()
    rows = (bad.arg_true() + 1).head(5).to_list()
    raise PitError(f"Column {spec.label_key!r} holds {keys.dtype} keys that are not the {dtype} keys of view "
                   f"{spec.name!r} (e.g. rows {', '.join(map(str, rows))})", column=spec.label_key)


# --- step 4/5: features and TTL ------------------------------------------------------------------


def attach_features(prepared: Prepared, chosen: pl.Series, spec: ViewSpec, picks: Picks | None = None) -> pl.DataFrame:
    """The chosen rows' event time, availability and features, aligned with the labels (nulls where none).
    With ``picks`` (a ``KeyIndex`` lookup: availability = event + lag) the times come from the index keys,
    and only the features are gathered from the rows."""
    feats = [pl.col(c).alias(out) for c, out in spec.features]
    cols = feats if picks is not None else [pl.col(_EVENT), pl.col(_AVAIL), *feats]
    # one row gather of the narrow frame (about twice as fast as a gather per column); null picks masked after
    out = _gather(prepared.table.select(cols), chosen.fill_null(0)) if len(prepared.table) else \
        prepared.table.select(cols).clear(len(chosen))
    if picks is not None:
        avail = pl.Series(_AVAIL, picks.avail).cast(TS)
        out = pl.concat([pl.DataFrame([(avail - spec.lag).alias(_EVENT), avail]), out], how="horizontal")
    if chosen.null_count():
        none = chosen.is_null()
        out = out.with_columns([pl.when(none).then(None).otherwise(pl.col(c)).alias(c) for c in out.columns])
    return out


def _gather(frame: pl.DataFrame, rows: pl.Series) -> pl.DataFrame:
    """``frame[rows]`` (no null rows), chunk by chunk when ``frame`` is in several aligned chunks (a Parquet
    read gives one per row group): polars' gather over a chunked frame resolves every index's chunk and
    took ~2× as long on the bench's 1M rows as sorting the indices, gathering from each chunk and
    restoring the order."""
    lens = frame.to_series(0).chunk_lengths() if frame.width else []
    if len(lens) < 2 or len(rows) < 10_000 or any(frame.to_series(i).chunk_lengths() != lens
                                                   for i in range(1, frame.width)):
        return frame[rows]
    idx = rows.to_numpy()
    order = np.argsort(idx)
    ordered = idx[order]
    bounds = np.cumsum([0, *lens])
    cut = np.searchsorted(ordered, bounds)
    parts = [frame.slice(int(bounds[j]), int(lens[j]))[pl.Series(ordered[cut[j]:cut[j + 1]] - bounds[j])]
             for j in range(len(lens)) if cut[j + 1] > cut[j]]
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return pl.concat(parts).rechunk()[pl.Series(inverse)]


def ttl_expired(event_time: datetime | None, as_of: datetime, ttl: timedelta | None) -> bool:
    """The TTL rule (one definition for the online lookup): a value is usable while it is at most ``ttl``
    old — inclusive: exactly ``ttl`` old is still usable, older is expired (``apply_ttl`` is the same rule)."""
    return event_time is not None and ttl is not None and (as_of - event_time) > ttl


def apply_ttl(times: pl.Series, attached: pl.DataFrame, spec: ViewSpec) -> tuple[pl.DataFrame, pl.Series]:
    """Null the features whose age at the label time exceeds the TTL; returns (frame, expired mask)."""
    if spec.ttl is None:
        return attached, pl.Series([False] * len(attached))
    expired = ((times - attached.get_column(_EVENT)) > spec.ttl).fill_null(False)
    keep = ~expired
    out = attached.with_columns(
        [pl.when(keep).then(pl.col(c)).otherwise(None).alias(c) for c in attached.columns])
    return out, expired


# --- the whole join ------------------------------------------------------------------------------


def point_in_time_join(labels: pl.DataFrame, views: list[tuple[ViewSpec, pl.DataFrame]], *,
                       timestamp_column: str, with_event_times: bool = False, leakage: bool = False,
                       with_status: bool = False) -> PitResult:
    """Join every view to ``labels`` point-in-time. Keeps all label rows in order.

    The output has the label columns (timestamp normalised to UTC) followed by each view's output
    columns, and with ``with_event_times`` a ``<view>__event_time`` column per view. ``with_status`` adds,
    for the i-th view, ``__pit_status_<i>`` ("ok" / "expired" / "missing") and ``__pit_event_<i>`` (the
    chosen row's event time, also when it expired) — the point-in-time lookup answers from these.
    """
    missing = [c for c in {timestamp_column, *(s.label_key for s, _ in views)} if c not in labels.columns]
    if missing:
        raise PitError(f"Label data is missing column {sorted(missing)[0]!r}", column=sorted(missing)[0])
    labels = normalize_timestamps(labels, [timestamp_column])
    base = labels.with_row_index(_ROW).with_columns(pl.col(timestamp_column).alias(_T))
    times = base.get_column(_T)
    out_cols, reports, any_value = [], [], None
    leak: dict = {}
    for i, (spec, features) in enumerate(views):
        prepared = prepare_view(features, spec)
        by_event, picks = None, None
        if prepared.index is not None:  # the report's newest rows and as-of at T + lag ride along
            picks = index_picks(base, prepared, spec, [timedelta(0), *([None, spec.lag] if leakage else [])])
            chosen = picks[0].series()
        elif leakage and not spec.written_at_column:  # the report's as-of on event time rides along (T + lag)
            chosen, by_event = asof_rows_shifted(base, prepared, spec, shifts=(timedelta(0), spec.lag))
        else:
            chosen = asof_rows(base, prepared, spec)
        attached = attach_features(prepared, chosen, spec, picks[0] if picks else None)
        found = chosen.is_not_null()
        event = attached.get_column(_EVENT)
        attached, expired = apply_ttl(times, attached, spec)
        if with_status:
            status = pl.select(pl.when(expired).then(pl.lit("expired")).when(found).then(pl.lit("ok"))
                               .otherwise(pl.lit("missing"))).to_series()
            out_cols.append(pl.DataFrame([status.alias(f"__pit_status_{i}"), event.alias(f"__pit_event_{i}")]))
        usable = found & ~expired
        any_value = usable if any_value is None else (any_value | usable)
        reports.append(ViewReport(view=spec.name, matched=int(usable.sum()), expired=int(expired.sum()),
                                  missing=int((~found).sum())))
        feature_cols = [out for _, out in spec.features]
        out_cols.append(attached.select(feature_cols))
        if with_event_times:
            out_cols.append(attached.select(pl.col(_EVENT).alias(f"{spec.name}__event_time")))
        if leakage:
            leak.update(leakage_report(base, prepared, spec, times, asof_event_rows=by_event,
                                       picks=tuple(picks[1:]) if picks else None))
    frame = pl.concat([labels, *out_cols], how="horizontal") if out_cols else labels
    without = len(labels) - int(any_value.sum()) if any_value is not None else len(labels)
    return PitResult(frame=frame, views=tuple(reports), rows_without_features=without, leakage=leak)


def feature_vector_as_of(features: pl.DataFrame, spec: ViewSpec, *, as_of: datetime,
                         entity_keys: list | None = None, apply_ttl_rule: bool = True) -> pl.DataFrame:
    """Each entity's feature vector as of ``as_of``: the same chain as the offline join (one synthetic
    label row per entity at ``as_of``). Columns: key, ``event_time``, ``available_at``, ``expired``, features.

    Without ``entity_keys`` every entity of ``features`` is computed (materialization). Entities with no
    available value are dropped. With ``apply_ttl_rule=False`` expired values are kept and flagged (the
    online store keeps them so the lookup can report "expired" rather than "unknown").
    """
    as_of = _utc(as_of)
    key = spec.entity_column
    if entity_keys is None:
        keys = features.select(pl.col(key).drop_nulls().unique())
    else:
        keys = pl.DataFrame([match_keys(pl.Series(key, entity_keys), features.schema[key], spec)])
    label_spec = ViewSpec(**{**spec.__dict__, "label_key": key})
    base = keys.with_row_index(_ROW).with_columns(pl.lit(as_of, dtype=TS).alias(_T))
    prepared = prepare_view(features, label_spec)
    chosen = asof_rows(base, prepared, label_spec)
    attached = attach_features(prepared, chosen, label_spec)
    times = base.get_column(_T)
    expired = ((times - attached.get_column(_EVENT)) > spec.ttl).fill_null(False) if spec.ttl is not None \
        else pl.Series([False] * len(attached))
    out = pl.concat([keys, attached.rename({_EVENT: "event_time", _AVAIL: "available_at"})], how="horizontal")
    out = out.with_columns(expired.alias("expired")).filter(chosen.is_not_null())
    if apply_ttl_rule:
        feats = [o for _, o in spec.features]
        out = out.with_columns([pl.when(pl.col("expired")).then(None).otherwise(pl.col(c)).alias(c) for c in feats])
    return out


# --- leakage ------------------------------------------------------------------------------------


def leakage_report(base: pl.DataFrame, prepared: Prepared, spec: ViewSpec, times: pl.Series, *,
                   general: bool = False, asof_event_rows: pl.Series | None = None,
                   picks: tuple[Picks, Picks] | None = None) -> dict:
    """What naive joins would have leaked, per feature of ``spec``:

    - ``latest_from_future``: a "latest value" join (each entity's newest row, no time awareness) took a
      value whose event time is after the label time;
    - ``latest_before_available``: ... took a value from at or before the label time that was not yet
      available (lag / written-at);
    - ``asof_event_time_unavailable``: an as-of join on event time that ignores lag and written-at took a
      value that was not yet available — the damage the declared availability prevents.
    Only non-null naive values count.
    """
    key = spec.entity_column
    left = base.select(_ROW, _T, match_keys(base.get_column(spec.label_key), prepared.keys.schema[key], spec).alias(key))
    if not spec.written_at_column and not general:
        return _leakage_by_availability(left, prepared, spec, times, asof_event_rows, picks)
    extra = [spec.written_at_column] if spec.written_at_column else []
    newest = prepared.keys.sort([_EVENT, *extra], nulls_last=False, maintain_order=True) \
        .group_by(key, maintain_order=True).last().select(key, _ORIG)  # newest (ties: written-at, file order)
    naive_rows = _by_row(left.join(newest, on=key, how="left"), _ORIG, len(left))
    naive = prepared.table.select(
        [pl.col(_EVENT).gather(naive_rows), pl.col(_AVAIL).gather(naive_rows),
         *[pl.col(c).gather(naive_rows).alias(f"__n_{o}") for c, o in spec.features]])
    future = (naive.get_column(_EVENT) > times).fill_null(False)
    early = ((naive.get_column(_EVENT) <= times) & (naive.get_column(_AVAIL) > times)).fill_null(False)
    # as-of on event time, ignoring availability
    ev = prepared.keys.select(key, pl.col(_EVENT).alias(_T), _ORIG).sort(_T, maintain_order=True)
    asof_rows_ = _by_row(left.sort(_T).join_asof(ev, on=_T, by=key, strategy="backward", check_sortedness=False),
                         _ORIG, len(left))
    asof = prepared.table.select([pl.col(_AVAIL).gather(asof_rows_),
                                  *[pl.col(c).gather(asof_rows_).alias(f"__e_{o}") for c, o in spec.features]])
    asof_early = (asof.get_column(_AVAIL) > times).fill_null(False)
    out = {}
    for _, o in spec.features:
        nn = naive.get_column(f"__n_{o}").is_not_null()
        en = asof.get_column(f"__e_{o}").is_not_null()
        out[o] = {
            "view": spec.name,
            "latest_from_future": int((future & nn).sum()),
            "latest_before_available": int((early & nn).sum()),
            "asof_event_time_unavailable": int((asof_early & en).sum()),
        }
    return out


def _leakage_by_availability(left: pl.DataFrame, prepared: Prepared, spec: ViewSpec, times: pl.Series,
                             asof_event_rows: pl.Series | None = None,
                             picks: tuple[Picks, Picks] | None = None) -> dict:
    """``leakage_report`` without a written-at column, in the join's own order: availability is event + lag,
    so ``prepared.right`` (sorted by availability, file order among ties) is also the event-time order —
    no second sort of the feature rows. Each entity's newest row is its last row there, and an as-of on
    event time at T is the as-of on availability at T + lag. Same counts as the general path."""
    key = spec.entity_column
    if prepared.index is not None:  # the newest row is the last key of the entity; the as-of at T + lag
        naive, asof = picks or _index_rows(prepared.index, left.get_column(key), left.get_column(_T), [None, spec.lag])
        return _leakage_counts_indexed(prepared, spec, times, naive, asof)
    right = prepared.right.rename({_AVAIL: _T})
    newest = right.filter(pl.col(key).is_last_distinct()).select(key, _BEST)
    naive_rows = _by_row(left.join(newest, on=key, how="left"), _BEST, len(left))
    asof_rows_ = asof_event_rows
    if asof_rows_ is None:  # (the join passes the rows of its own as-of at T + lag)
        shifted = left.with_columns(pl.col(_T) + pl.duration(microseconds=_us(spec.lag))).sort(_T)
        asof_rows_ = _by_row(shifted.join_asof(right, on=_T, by=key, strategy="backward", check_sortedness=False),
                             _BEST, len(left))
    return _leakage_counts(prepared, spec, times, naive_rows, asof_rows_)


def _leakage_counts(prepared: Prepared, spec: ViewSpec, times: pl.Series, naive_rows: pl.Series,
                    asof_rows_: pl.Series) -> dict:
    naive_event = prepared.table.get_column(_EVENT).gather(naive_rows)
    naive_avail = prepared.table.get_column(_AVAIL).gather(naive_rows)
    future = (naive_event > times).fill_null(False)
    early = ((naive_event <= times) & (naive_avail > times)).fill_null(False)
    asof_early = (prepared.table.get_column(_AVAIL).gather(asof_rows_) > times).fill_null(False)
    out = {}
    for c, o in spec.features:
        col = prepared.table.get_column(c)
        nn = col.gather(naive_rows).is_not_null() if col.null_count() else naive_rows.is_not_null()
        en = col.gather(asof_rows_).is_not_null() if col.null_count() else asof_rows_.is_not_null()
        out[o] = {"view": spec.name, "latest_from_future": int((future & nn).sum()),
                  "latest_before_available": int((early & nn).sum()),
                  "asof_event_time_unavailable": int((asof_early & en).sum())}
    return out


def _leakage_counts_indexed(prepared: Prepared, spec: ViewSpec, times: pl.Series, naive: Picks, asof: Picks) -> dict:
    """``_leakage_counts`` from a ``KeyIndex`` lookup: the picks carry each row's availability (event =
    availability - lag), so only feature columns with nulls are gathered."""
    t = times.to_physical().fill_null(0).to_numpy()   # (null label times: no hit)
    naive_event = naive.avail - _us(spec.lag)
    future = naive.hit & (naive_event > t)
    early = naive.hit & (naive_event <= t) & (naive.avail > t)
    asof_early = asof.hit & (asof.avail > t)
    out = {}
    for c, o in spec.features:
        col = prepared.table.get_column(c)
        nn = col.gather(naive.series()).is_not_null().to_numpy() if col.null_count() else naive.hit
        en = col.gather(asof.series()).is_not_null().to_numpy() if col.null_count() else asof.hit
        out[o] = {"view": spec.name, "latest_from_future": int(np.count_nonzero(future & nn)),
                  "latest_before_available": int(np.count_nonzero(early & nn)),
                  "asof_event_time_unavailable": int(np.count_nonzero(asof_early & en))}
    return out


def _us(delta: timedelta) -> int:
    return int(delta / timedelta(microseconds=1))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

"""The point-in-time join (pure, no DB) against a brute-force reference on random data."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.features import pit

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def brute_force(labels: list[dict], rows: list[dict], *, lag, ttl, written: bool):
    """Row by row, straight from the rule in pit's docstring."""
    out = []
    for lab in labels:
        t = lab["t"]
        best = None
        for i, r in enumerate(rows):
            if r["k"] != lab["k"]:
                continue
            avail = r["e"] + lag
            if written and r["w"] is not None:
                avail = max(avail, r["w"])
            if avail > t:
                continue
            key = (r["e"], r["w"] if (written and r["w"] is not None) else datetime.min.replace(tzinfo=UTC), i)
            if best is None or key > best[0]:
                best = (key, r)
        if best is None:
            out.append((None, "missing"))
        elif ttl is not None and t - best[1]["e"] > ttl:
            out.append((None, "expired"))
        else:
            out.append((best[1]["x"], "ok"))
    return out


minutes = st.integers(min_value=0, max_value=40)
keys = st.sampled_from(["a", "b", "c"])
feature_row = st.fixed_dictionaries({"k": keys, "e": minutes, "w": st.one_of(st.none(), minutes),
                                     "x": st.integers(-1000, 1000)})
label_row = st.fixed_dictionaries({"k": st.sampled_from(["a", "b", "c", "zz"]), "t": minutes,
                                   "tz": st.sampled_from([0, 2, -5])})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(feature_row, max_size=25), labels=st.lists(label_row, min_size=1, max_size=20),
       lag=st.integers(0, 10), ttl=st.one_of(st.none(), st.integers(0, 15)), written=st.booleans())
def test_pit_join_equals_brute_force(rows, labels, lag, ttl, written):
    lag_d = timedelta(minutes=lag)
    ttl_d = timedelta(minutes=ttl) if ttl is not None else None
    frows = [{"k": r["k"], "e": T0 + timedelta(minutes=r["e"]),
              "w": (T0 + timedelta(minutes=r["w"])) if r["w"] is not None else None, "x": r["x"]} for r in rows]
    # labels carry their time in assorted time zones (as aware datetimes); the join must normalise them
    flabels = [{"k": lab["k"], "t": T0 + timedelta(minutes=lab["t"])} for lab in labels]
    label_strings = [(T0 + timedelta(minutes=lab["t"])).astimezone(timezone(timedelta(hours=lab["tz"]))).isoformat()
                     for lab in labels]
    features = pl.DataFrame({"k": [r["k"] for r in frows], "e": [r["e"] for r in frows],
                             "w": [r["w"] for r in frows], "x": [r["x"] for r in frows]},
                            schema={"k": pl.String, "e": pl.Datetime("us", "UTC"), "w": pl.Datetime("us", "UTC"),
                                    "x": pl.Int64})
    label_df = pl.DataFrame({"k": [lab["k"] for lab in labels], "when": label_strings, "y": list(range(len(labels)))})
    spec = pit.ViewSpec(name="v", entity_column="k", label_key="k", timestamp_column="e", features=(("x", "x"),),
                        lag=lag_d, ttl=ttl_d, written_at_column="w" if written else None)
    result = pit.point_in_time_join(label_df, [(spec, features)], timestamp_column="when")
    expected = brute_force(flabels, frows, lag=lag_d, ttl=ttl_d, written=written)
    assert result.frame.height == len(labels)                      # every label row kept
    assert result.frame.get_column("y").to_list() == list(range(len(labels)))  # in order
    assert result.frame.get_column("x").to_list() == [v for v, _ in expected]
    rep = result.views[0]
    assert rep.expired == sum(s == "expired" for _, s in expected)
    assert rep.missing == sum(s == "missing" for _, s in expected)
    assert result.frame.get_column("when").dtype == pl.Datetime("us", "UTC")


def _one(lag, ttl, label_time, rows):
    features = pl.DataFrame(rows, schema={"k": pl.String, "e": pl.Datetime("us", "UTC"), "x": pl.Int64}, orient="row")
    spec = pit.ViewSpec(name="v", entity_column="k", label_key="k", timestamp_column="e", features=(("x", "x"),),
                        lag=lag, ttl=ttl)
    labels = pl.DataFrame({"k": ["a"], "t": [label_time]})
    return pit.point_in_time_join(labels, [(spec, features)], timestamp_column="t").frame.get_column("x")[0]


def test_lag_exactly_at_the_boundary_is_available():
    rows = [("a", T0, 1)]
    assert _one(timedelta(hours=1), None, T0 + timedelta(hours=1), rows) == 1
    assert _one(timedelta(hours=1), None, T0 + timedelta(hours=1) - timedelta(microseconds=1), rows) is None


def test_ttl_boundary_is_inclusive_and_expiry_nulls_the_value():
    rows = [("a", T0, 1)]
    assert _one(timedelta(0), timedelta(hours=2), T0 + timedelta(hours=2), rows) == 1
    assert _one(timedelta(0), timedelta(hours=2), T0 + timedelta(hours=2, seconds=1), rows) is None


def test_ties_on_event_time_take_the_last_row_in_file_order():
    rows = [("a", T0, 1), ("a", T0, 2)]
    assert _one(timedelta(0), None, T0, rows) == 2


def test_late_correction_is_not_used_before_it_was_written():
    features = pl.DataFrame({"k": ["a", "a"], "e": [T0, T0], "w": [T0, T0 + timedelta(days=3)], "x": [1, 99]})
    spec = pit.ViewSpec(name="v", entity_column="k", label_key="k", timestamp_column="e", features=(("x", "x"),),
                        written_at_column="w")
    labels = pl.DataFrame({"k": ["a", "a"], "t": [T0 + timedelta(days=1), T0 + timedelta(days=4)]})
    out = pit.point_in_time_join(labels, [(spec, features)], timestamp_column="t").frame.get_column("x").to_list()
    assert out == [1, 99]


def test_naive_timestamps_are_utc_and_offsets_are_converted():
    df = pl.DataFrame({"t": ["2024-01-01T02:00:00+02:00", "2024-01-01 00:00:00", "2024-01-01T00:00:00Z"]})
    out = pit.normalize_timestamps(df, ["t"]).get_column("t").to_list()
    assert out == [datetime(2024, 1, 1, tzinfo=UTC)] * 3


def test_unparseable_timestamp_names_the_column_and_row():
    with pytest.raises(pit.PitError, match=r"'when'.*'yesterday'.*row 2") as err:
        pit.normalize_timestamps(pl.DataFrame({"when": ["2024-01-01", "yesterday"]}), ["when"])
    assert err.value.column == "when"


def test_missing_label_column_is_named():
    spec = pit.ViewSpec(name="v", entity_column="k", label_key="customer_id", timestamp_column="e", features=(("x", "x"),))
    with pytest.raises(pit.PitError, match="customer_id"):
        pit.point_in_time_join(pl.DataFrame({"t": [T0]}), [(spec, pl.DataFrame({"k": ["a"], "e": [T0], "x": [1]}))],
                               timestamp_column="t")


def test_leakage_report_counts_future_and_unavailable_values():
    features = pl.DataFrame({"k": ["a", "a"], "e": [T0, T0 + timedelta(hours=5)], "x": [1, 2]})
    spec = pit.ViewSpec(name="v", entity_column="k", label_key="k", timestamp_column="e", features=(("x", "x"),),
                        lag=timedelta(hours=1))
    labels = pl.DataFrame({"k": ["a", "a", "a"], "t": [T0 + timedelta(hours=2), T0 + timedelta(hours=5, minutes=30),
                                                       T0 + timedelta(hours=7)]})
    res = pit.point_in_time_join(labels, [(spec, features)], timestamp_column="t", leakage=True)
    assert res.frame.get_column("x").to_list() == [1, 1, 2]
    assert res.leakage["x"] == {"view": "v", "latest_from_future": 1, "latest_before_available": 1,
                                "asof_event_time_unavailable": 1}


def test_pit_module_imports_no_django():
    code = "import apps.features.pit, apps.features.tabular, sys; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_label_keys_of_another_type_are_refused_naming_the_column():
    spec = pit.ViewSpec(name="v", entity_column="k", label_key="k", timestamp_column="e", features=(("x", "x"),))
    features = pl.DataFrame({"k": [1, 2], "e": [T0, T0], "x": [1, 2]})
    ok = pit.point_in_time_join(pl.DataFrame({"k": ["1", "3"], "t": [T0, T0]}), [(spec, features)], timestamp_column="t")
    assert ok.frame.get_column("x").to_list() == [1, None]  # "1" casts to 1; "3" is just unknown
    with pytest.raises(pit.PitError, match="'k' holds String keys that are not the Int64 keys of view 'v'") as err:
        pit.point_in_time_join(pl.DataFrame({"k": ["c1"], "t": [T0]}), [(spec, features)], timestamp_column="t")
    assert err.value.column == "k"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.fixed_dictionaries({"k": keys, "e": minutes, "x": st.one_of(st.none(), st.integers(-9, 9))}),
                     min_size=1, max_size=25),
       labels=st.lists(label_row, min_size=1, max_size=20), lag=st.integers(0, 10))
def test_leakage_report_in_the_joins_order_equals_the_general_report(rows, labels, lag):
    """Without written-at the job's report reuses the join's availability order (no second sort); it must
    count exactly what the general (re-sorting) report counts — ties, nulls and unknown entities included."""
    features = pl.DataFrame({"k": [r["k"] for r in rows], "e": [T0 + timedelta(minutes=r["e"]) for r in rows],
                             "x": [r["x"] for r in rows]}, schema={"k": pl.String, "e": pit.TS, "x": pl.Int64})
    label_df = pl.DataFrame({"k": [lab["k"] for lab in labels], "t": [T0 + timedelta(minutes=lab["t"]) for lab in labels]})
    spec = pit.ViewSpec(name="v", entity_column="k", label_key="k", timestamp_column="e", features=(("x", "x"),),
                        lag=timedelta(minutes=lag))
    base = label_df.with_row_index(pit._ROW).with_columns(pl.col("t").alias(pit._T))
    prepared = pit.prepare_view(features, spec)
    times = base.get_column(pit._T)
    general = pit.leakage_report(base, prepared, spec, times, general=True)
    assert pit.leakage_report(base, prepared, spec, times) == general
    joined = pit.point_in_time_join(label_df, [(spec, features)], timestamp_column="t", leakage=True)
    assert joined.leakage == general                 # the job's path: its as-of at T + lag rides in the join
    assert joined.frame.get_column("x").to_list() == \
        pit.point_in_time_join(label_df, [(spec, features)], timestamp_column="t").frame.get_column("x").to_list()


KEY_SETS = {  # integer keys (negative, far apart), keys too far apart to pack (polars path), text keys
    "int": [-(2 ** 40), -1, 0, 7],
    "int_huge_range": [-(2 ** 62), 0, 2 ** 62],
    "str": ["007", "7", "a"],
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(KEY_SETS)), data=st.data(), lag=st.integers(0, 10),
       seconds=st.sampled_from([1, 60, 3600]))
def test_every_as_of_path_equals_brute_force(kind, data, lag, seconds):
    """The key index (dense table; sorted keys by a value sort of packed keys, or by an argsort) and polars'
    join_asof choose the same row as the rule: ties, unknown and null keys, labels before every row, rows
    with a null key."""
    pool = KEY_SETS[kind]
    rows = data.draw(st.lists(st.fixed_dictionaries({"k": st.one_of(st.sampled_from(pool), st.none()),
                                                     "e": minutes}), max_size=30))
    labels = data.draw(st.lists(st.fixed_dictionaries({"k": st.one_of(st.sampled_from(pool), st.none()),
                                                       "t": st.integers(-5, 60)}), min_size=1, max_size=20))
    unit = timedelta(seconds=seconds)
    dtype = pl.Int64 if isinstance(pool[0], int) else pl.String
    frows = [{"k": r["k"], "e": T0 + r["e"] * unit, "w": None, "x": i} for i, r in enumerate(rows)]
    flabels = [{"k": lab["k"], "t": T0 + lab["t"] * unit} for lab in labels]
    features = pl.DataFrame({"k": [r["k"] for r in frows], "e": [r["e"] for r in frows], "x": [r["x"] for r in frows]},
                            schema={"k": dtype, "e": pit.TS, "x": pl.Int64})
    label_df = pl.DataFrame({"k": [lab["k"] for lab in flabels], "t": [lab["t"] for lab in flabels]},
                            schema={"k": dtype, "t": pit.TS})
    spec = pit.ViewSpec(name="v", entity_column="k", label_key="k", timestamp_column="e", features=(("x", "x"),),
                        lag=lag * unit)
    expected = [v for v, _ in brute_force([lab for lab in flabels], [r for r in frows if r["k"] is not None],
                                          lag=lag * unit, ttl=None, written=False)]
    expected = [v if lab["k"] is not None else None for v, lab in zip(expected, flabels, strict=True)]
    base = label_df.with_row_index(pit._ROW).with_columns(pl.col("t").alias(pit._T))
    reports = []
    for method in ("auto", "dense", "sorted", "argsort", "asof"):
        prepared = pit.prepare_view(features, spec, method=method)
        present = {r["k"] for r in rows} - {None}
        too_far = kind.startswith("int") and present and max(present) - min(present) >= 2 ** 62
        if method == "asof" or not present or too_far:  # polars' as-of
            assert prepared.index is None
        else:
            assert prepared.index is not None
        assert pit.asof_rows(base, prepared, spec).to_list() == expected, method
        reports.append(pit.leakage_report(base, prepared, spec, base.get_column(pit._T)))
    general = pit.leakage_report(base, pit.prepare_view(features, spec), spec, base.get_column(pit._T), general=True)
    assert reports == [general] * 5


def test_gather_by_chunk_equals_a_plain_gather():
    rng = np.random.default_rng(3)
    parts = [pl.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 9, size=n),
                           "c": pl.Series([None, "x"] * (n // 2), dtype=pl.String)}) for n in (12_000, 8_000, 14_000)]
    frame = pl.concat(parts, rechunk=False)
    assert frame.n_chunks() == 3
    rows = pl.Series(rng.integers(0, frame.height, size=25_000), dtype=pl.UInt32)
    assert pit._gather(frame, rows).equals(frame[rows])
    assert pit._gather(frame.rechunk(), rows).equals(frame[rows])
    misaligned = frame.with_columns(pl.Series("b", rng.integers(0, 9, size=frame.height)))  # one chunk
    assert pit._gather(misaligned, rows).equals(misaligned[rows])


def test_every_as_of_path_agrees_on_a_chunked_frame_with_ties():
    """At a size where the gathers go chunk by chunk (a Parquet read gives one chunk per row group): the dense
    index, the sorted index (value sort and argsort) and polars' as-of pick the same rows, and the job's
    leakage report (from the index keys) equals the general one."""
    rng = np.random.default_rng(5)
    n, n_labels = 12_000, 5_000
    parts = []
    for _ in range(3):  # hourly snapshots of 300 entities with duplicate (entity, time) rows
        parts.append(pl.DataFrame({"k": rng.integers(0, 300, size=n), "e": T0 + pl.Series(
            rng.integers(0, 60, size=n) * 3_600_000_000).cast(pl.Duration("us")), "x": rng.normal(size=n)}))
    features = pl.concat(parts, rechunk=False).with_columns(pl.col("e").dt.cast_time_unit("us"))
    assert features.n_chunks() == 3
    labels = pl.DataFrame({"k": rng.integers(-5, 310, size=n_labels),
                           "t": T0 + pl.Series(rng.integers(-60, 4_000, size=n_labels) * 60_000_000).cast(pl.Duration("us"))})
    spec = pit.ViewSpec(name="v", entity_column="k", label_key="k", timestamp_column="e", features=(("x", "x"),),
                        lag=timedelta(hours=2), ttl=timedelta(hours=5))
    base = labels.with_row_index(pit._ROW).with_columns(pl.col("t").alias(pit._T))
    picked = {}
    for method in ("dense", "sorted", "argsort", "asof"):
        prepared = pit.prepare_view(features, spec, method=method)
        assert (prepared.index is not None and (prepared.index.filled is not None) == (method == "dense")) \
            or method == "asof"
        picked[method] = pit.asof_rows(base, prepared, spec).to_list()
    assert picked["dense"] == picked["sorted"] == picked["argsort"] == picked["asof"]
    assert 0 < sum(r is None for r in picked["dense"]) < n_labels
    auto = pit.prepare_view(features, spec)
    assert auto.index is not None and auto.index.filled is not None  # 300 × 60 keys for 36,000 rows: dense
    times = base.get_column(pit._T)
    joined = pit.point_in_time_join(labels, [(spec, features)], timestamp_column="t", leakage=True)
    assert joined.leakage == pit.leakage_report(base, auto, spec, times, general=True)
    by_asof = pit.point_in_time_join(labels, [(spec, features.with_columns(pl.col("k").cast(pl.String)))],
                                     timestamp_column="t")  # (string keys: codes, not key - kmin)
    assert joined.frame.get_column("x").equals(by_asof.frame.get_column("x"))

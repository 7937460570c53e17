"""The one parser for every upload (apps.common.tabular), pure: no database. Every hostile input in CSV and
in Parquet gets the same answer."""

import io
import subprocess
import sys
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from apps.common import tabular
from apps.common.tabular import TableError, canonical_key, conform, read_table


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def as_csv(tmp_path, text: str):
    return _write(tmp_path, "t.csv", text.strip().encode() + b"\n")


def as_parquet(tmp_path, columns: dict, names: list[str] | None = None):
    """A Parquet file with string/typed columns as given (``names`` may repeat a name)."""
    arrays = [pa.array(v) for v in columns.values()]
    table = pa.table(arrays, names=names or list(columns))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return _write(tmp_path, "t.parquet", buf.getvalue())


def test_parser_imports_no_django():
    subprocess.run([sys.executable, "-c", "import apps.common.tabular, sys; assert 'django' not in sys.modules"],
                   check=True)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_duplicate_column_names_are_refused_in_every_format(tmp_path, fmt):
    path = (as_csv(tmp_path, "amt,amt\n1,2") if fmt == "csv"
            else as_parquet(tmp_path, {"a": [1], "b": [2]}, names=["amt", "amt"]))
    with pytest.raises(TableError, match="two columns named 'amt' \\(positions 1 and 2\\)") as err:
        read_table(path)
    assert err.value.column == "amt"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_na_is_a_string_unless_the_upload_names_it_a_null_token(tmp_path, fmt):
    path = (as_csv(tmp_path, "country,n\nNA,1\n,2\nnull,3") if fmt == "csv"
            else as_parquet(tmp_path, {"country": ["NA", None, "null"], "n": [1, 2, 3]}))
    df, _ = read_table(path)
    assert df.get_column("country").to_list() == ["NA", None, "null"]     # Namibia stays
    df, _ = read_table(path, null_values=["NA", "null"])
    assert df.get_column("country").to_list() == [None, None, None]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_string_keys_keep_leading_zeros_declared_or_inferred(tmp_path, fmt):
    path = (as_csv(tmp_path, "k,x\n007,1\n7,2\n0,3") if fmt == "csv"
            else as_parquet(tmp_path, {"k": ["007", "7", "0"], "x": [1, 2, 3]}))
    inferred, _ = read_table(path)
    declared, _ = read_table(path, types={"k": "string"})
    for df in (inferred, declared):
        assert df.schema["k"] == pl.String and df.get_column("k").to_list() == ["007", "7", "0"]


def test_plain_integers_are_inferred_as_int_but_leading_zeros_are_text(tmp_path):
    df, _ = read_table(as_csv(tmp_path, "a,b,c,d\n1,01,1.5,true\n-2,02,2,false"))
    assert df.schema == pl.Schema({"a": pl.Int64, "b": pl.String, "c": pl.Float64, "d": pl.Boolean})


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_non_integral_value_for_an_int_column_is_refused_naming_rows_never_truncated(tmp_path, fmt):
    path = (as_csv(tmp_path, "k,y\n1.9,1\n2,0\n2.7,1") if fmt == "csv"
            else as_parquet(tmp_path, {"k": [1.9, 2.0, 2.7], "y": [1, 0, 1]}))
    with pytest.raises(TableError, match="Column 'k' is declared int but holds non-integral numbers") as err:
        read_table(path, types={"k": "int"})
    assert err.value.column == "k" and err.value.rows == [1, 3]
    assert "row 1" in str(err.value) and "row 3" in str(err.value)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_integral_numbers_are_accepted_for_an_int_column(tmp_path, fmt):
    path = (as_csv(tmp_path, "k\n1.0\n007\n3") if fmt == "csv" else as_parquet(tmp_path, {"k": [1.0, 7.0, 3.0]}))
    df, _ = read_table(path, types={"k": "int"})
    assert df.schema["k"] == pl.Int64 and df.get_column("k").to_list() == [1, 7, 3]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_mixed_types_in_a_declared_int_column_are_refused_naming_column_and_rows(tmp_path, fmt):
    path = (as_csv(tmp_path, "k,y\n1,0\nabc,1\n3,0") if fmt == "csv"
            else as_parquet(tmp_path, {"k": ["1", "abc", "3"], "y": [0, 1, 0]}))
    with pytest.raises(TableError, match="Column 'k' is declared int but holds values that are not integers: "
                                         "'abc' in row 2") as err:
        read_table(path, types={"k": "int"})
    assert err.value.rows == [2]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_text_in_a_declared_numeric_column_is_refused_naming_the_column(tmp_path, fmt):
    path = (as_csv(tmp_path, "f3,y\n1.5,0\nhigh,1") if fmt == "csv"
            else as_parquet(tmp_path, {"f3": ["1.5", "high"], "y": [0, 1]}))
    with pytest.raises(TableError, match="Column 'f3' is declared float but holds text: 'high' in row 2"):
        read_table(path, types={"f3": "float"})


def test_a_typed_parquet_column_of_another_kind_is_refused(tmp_path):
    path = as_parquet(tmp_path, {"f": [True, False]})
    with pytest.raises(TableError, match="Column 'f' of .* holds bool values but is declared float"):
        read_table(path, types={"f": "float"})
    path = as_parquet(tmp_path, {"k": [1.5, 2.0]})
    with pytest.raises(TableError, match="holds float values but is declared string"):
        read_table(path, types={"k": "string"})


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_timestamps_are_utc_and_unparseable_ones_are_named(tmp_path, fmt):
    good = ["2024-01-01T01:00:00+01:00", "2024-01-01 00:30:00"]
    path = (as_csv(tmp_path, "t\n" + "\n".join(good)) if fmt == "csv" else as_parquet(tmp_path, {"t": good}))
    df, _ = read_table(path, types={"t": "datetime"})
    assert df.get_column("t").to_list() == [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 30, tzinfo=UTC)]
    bad = as_csv(tmp_path, "t\n2024-01-01\nyesterday")
    with pytest.raises(TableError, match="Column 't' is declared datetime .*'yesterday' in row 2"):
        read_table(bad, types={"t": "datetime"})


def test_empty_header_only_blank_names_and_binary_files_are_refused(tmp_path):
    for data, message in ((b"", "is empty"), (b"a,b\n", "header but no rows"), (b"a,,c\n1,2,3\n", "without a name"),
                          (b"\x00\x01PK", "binary content")):
        with pytest.raises(TableError, match=message):
            read_table(_write(tmp_path, "x.csv", data))


def test_conform_applies_declared_types_to_a_pandas_frame():
    import pandas as pd

    frame = pd.DataFrame({"k": [1.0, 2.0, None], "y": [1, 0, 1]})
    out = conform(frame, {"k": "int"})
    assert out.schema["k"] == pl.Int64 and out.get_column("k").to_list() == [1, 2, None]
    with pytest.raises(TableError, match="non-integral"):
        conform(pd.DataFrame({"k": [1.5]}), {"k": "int"})
    with pytest.raises(TableError, match="Column 'k' of the file mixes value types \\(int, str\\)") as err:
        conform(pd.DataFrame({"k": [1, "abc"], "y": [0, 1]}), {"k": "int"})
    assert err.value.column == "k"


@pytest.mark.parametrize(("value", "kind", "expected"), [
    (7, "int", "7"), (7.0, "int", "7"), ("007", "int", "7"), (" 12 ", "int", "12"),
    ("007", "string", "007"), ("7", "string", "7"), (7, "string", "7"),
])
def test_canonical_key(value, kind, expected):
    assert canonical_key(value, kind) == expected


@pytest.mark.parametrize(("value", "kind"), [(1.5, "int"), ("1.9", "int"), ("abc", "int"), (True, "int"),
                                             (None, "string"), (1.5, "string"), (True, "string")])
def test_canonical_key_refuses_what_is_not_a_key_of_that_type(value, kind):
    with pytest.raises(ValueError):
        canonical_key(value, kind)


def test_null_tokens_and_types_parse_from_form_text():
    assert tabular.parse_null_values("NA, null") == ["NA", "null"]
    assert tabular.parse_null_values('["NA", ""]') == ["NA"]
    assert tabular.parse_types("customer_id:string, amount:float") == {"customer_id": "string", "amount": "float"}
    assert tabular.parse_types('{"k": "INT"}') == {"k": "int"}
    with pytest.raises(TableError, match="not one of"):
        tabular.parse_types("k:decimal")


def test_a_wide_csv_is_typed_in_one_pass(tmp_path):
    header = ",".join(f"c{i}" for i in range(2000))
    rows = "\n".join(",".join(str(i * j % 97 + 0.5) for i in range(2000)) for j in range(5))
    df, _ = read_table(as_csv(tmp_path, header + "\n" + rows))
    assert df.width == 2000 and set(df.schema.values()) == {pl.Float64}

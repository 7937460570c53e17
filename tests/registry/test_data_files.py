"""Holdout and training data files are read by the portal's one parser, with the model contract's feature
types declared: hostile files are rejected naming the column, in CSV and in Parquet alike."""

import io

import pandas as pd
import pytest

from apps.common.storage import artifact_store
from apps.registry.validation import Rejected, read_table

pytestmark = pytest.mark.django_db
CONTRACT = [{"name": "f1", "type": "float"}, {"name": "f2", "type": "int"}, {"name": "f3", "type": "float"},
            {"name": "country", "type": "string"}]


def _store(frame: pd.DataFrame, fmt: str, columns: list[str] | None = None) -> str:
    if fmt == "csv":
        header = ",".join(columns or frame.columns)
        body = "\n".join(",".join("" if pd.isna(v) else str(v) for v in row) for row in frame.itertuples(index=False))
        data = f"{header}\n{body}\n".encode()
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table([pa.array(frame[c].tolist()) for c in frame.columns], names=columns or list(frame.columns))
        buf = io.BytesIO()
        pq.write_table(table, buf)
        data = buf.getvalue()
    return artifact_store().put_bytes(data, suffix=f".{fmt}").key


def _frame(**overrides) -> pd.DataFrame:
    base = {"f1": [0.5, 1.5], "f2": [1, 2], "f3": [2.0, 3.0], "country": ["NA", "US"], "target": [0, 1]}
    return pd.DataFrame({**base, **overrides})


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_holdout_reads_declared_types_and_keeps_na_as_a_string(fmt):
    df = read_table(_store(_frame(), fmt), label="holdout file", contract=CONTRACT)
    assert df["country"].tolist() == ["NA", "US"] and df["f2"].tolist() == [1, 2]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_string_column_for_a_float_feature_is_rejected_naming_the_column(fmt):
    key = _store(_frame(f3=["1.0", "high"]), fmt)
    with pytest.raises(Rejected, match="Column 'f3' is declared float but holds text: 'high' in row 2"):
        read_table(key, label="holdout file", contract=CONTRACT)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_non_integral_value_for_an_int_feature_is_rejected_not_truncated(fmt):
    key = _store(_frame(f2=[1.0, 2.5]), fmt)
    with pytest.raises(Rejected, match="Column 'f2' is declared int but holds non-integral numbers .*2.5'? in row 2"):
        read_table(key, label="training data file", contract=CONTRACT)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_duplicate_column_names_are_rejected(fmt):
    key = _store(_frame(), fmt, columns=["f1", "f2", "f3", "f1", "target"])
    with pytest.raises(Rejected, match="two columns named 'f1'"):
        read_table(key, label="holdout file", contract=CONTRACT)

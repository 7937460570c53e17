"""Typed contracts and contract inference (pure: no database)."""

import numpy as np
import pandas as pd
import pytest

from apps.registry import contract as spec
from apps.registry import infer


@pytest.mark.parametrize("name", ["mean radius", "Monthly Spend ($)", "größe", "a:b", "x" * 200, "1st", "a,b"])
def test_feature_names_are_any_pandas_column_text(name):
    assert spec.normalize_contract([{"name": name, "type": "float"}])[0]["name"] == name


@pytest.mark.parametrize("name, needle", [
    ("", "the name is empty"), ("   ", "the name is empty"), ("a\tb", "U+0009"), ("a\nb", "U+000A"),
    ("x" * 201, "201 characters long"), (3, "is not text"),
])
def test_invalid_feature_names_state_the_rule(name, needle):
    with pytest.raises(spec.ContractSpecError) as err:
        spec.normalize_contract([{"name": name, "type": "float"}])
    assert needle in str(err.value) and "no control characters" in str(err.value)


def test_normalize_canonical_types_nullable_categories_and_policy():
    out = spec.normalize_contract([
        {"name": "a", "type": "str", "categories": ["x", "y"]},
        {"name": "b", "type": "integer", "categorical": True, "categories": [1, 2.0], "unknown": "pass"},
        {"name": "c", "type": "boolean", "nullable": True},
        {"name": "d", "type": "timestamp"},
    ])
    assert out == [
        {"name": "a", "type": "string", "nullable": False, "categories": ["x", "y"], "unknown": "refuse"},
        {"name": "b", "type": "int", "nullable": False, "categorical": True, "categories": [1, 2], "unknown": "pass"},
        {"name": "c", "type": "bool", "nullable": True},
        {"name": "d", "type": "datetime", "nullable": False},
    ]
    assert [spec.is_categorical(c) for c in out] == [True, True, True, False]


@pytest.mark.parametrize("item, needle", [
    ({"name": "a", "type": "float", "categories": ["x"]}, "categories are for string features"),
    ({"name": "a", "type": "bool", "categorical": True}, "only int features can be declared categorical"),
    ({"name": "a", "type": "string", "unknown": "pass"}, "needs a list of categories"),
    ({"name": "a", "type": "string", "categories": ["x"], "unknown": "drop"}, "'refuse' or 'pass'"),
    ({"name": "a", "type": "string", "categories": ["x", "x"]}, "listed twice"),
    ({"name": "a", "type": "int", "categorical": True, "categories": ["x"]}, "must be integers"),
    ({"name": "a", "type": "float", "nullable": "yes"}, "nullable must be true or false"),
    ({"name": "a", "kind": "float"}, "unknown key(s) kind"),
])
def test_invalid_features_name_the_feature(item, needle):
    with pytest.raises(spec.ContractSpecError, match="Feature 'a'") as err:
        spec.normalize_contract([item])
    assert needle in str(err.value)


def test_contract_text_one_per_line_keeps_spaces_commas_and_colons_in_names():
    text = "Monthly Spend ($):float\ncity, state:string\ntime:of:day:int?\nplain"
    assert spec.parse_contract_text(text) == [
        {"name": "Monthly Spend ($)", "type": "float", "nullable": False},
        {"name": "city, state", "type": "string", "nullable": False},
        {"name": "time:of:day", "type": "int", "nullable": True},
        {"name": "plain", "type": "float", "nullable": False}]
    assert spec.parse_contract_text("a:float, b:int") == [{"name": "a", "type": "float", "nullable": False},
                                                          {"name": "b", "type": "int", "nullable": False}]
    with pytest.raises(spec.ContractSpecError, match="type 'complex' is not one of"):
        spec.parse_contract_text("a:complex")


def _pipeline(X, y, *, encoder=None, imputer=False):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = make_pipeline(SimpleImputer(), StandardScaler()) if imputer else StandardScaler()
    pre = ColumnTransformer([("cat", encoder or OneHotEncoder(handle_unknown="ignore"), ["country", "region"]),
                             ("num", num, [2, 3])])  # numeric columns by position
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, y)


def _frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"country": rng.choice(["DE", "FR"], n), "region": rng.integers(1, 4, n),
                      "mean radius": rng.normal(size=n), "count of things": rng.integers(0, 9, n)})
    return X, (rng.random(n) > 0.5).astype(int)


def test_infer_reads_names_encoder_categories_and_data_dtypes():
    X, y = _frame()
    contract, sources = infer.infer_contract(_pipeline(X, y), X.assign(target=y), exclude=("target",))
    assert contract == [
        {"name": "country", "type": "string", "nullable": False, "categories": ["DE", "FR"], "unknown": "refuse"},
        {"name": "region", "type": "int", "nullable": False, "categorical": True, "categories": [1, 2, 3],
         "unknown": "refuse"},
        {"name": "mean radius", "type": "float", "nullable": False},
        {"name": "count of things", "type": "int", "nullable": False},
    ]
    assert sources == ["the model's feature_names_in_", "the model's column transformers", "the data file's dtypes"]


def test_infer_without_data_uses_the_model_and_imputers_make_features_nullable():
    X, y = _frame()
    X.loc[3, "mean radius"] = np.nan
    contract, _ = infer.infer_contract(_pipeline(X, y, imputer=True), None)
    by = {c["name"]: c for c in contract}
    assert by["mean radius"] == {"name": "mean radius", "type": "float", "nullable": True}
    assert by["count of things"]["type"] == "float"  # no data file: a scaled column is a number


def test_infer_from_data_columns_when_the_model_has_no_names():
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1, 0, 1, 1], "target": [1.0, 2.0, 2.5, 4.0]})
    model = LinearRegression().fit(X[["a", "b"]].to_numpy(), X["target"])
    contract, sources = infer.infer_contract(model, X, exclude=("target",))
    assert [c["name"] for c in contract] == ["a", "b"] and sources[0] == "the data file's columns"
    with pytest.raises(spec.ContractSpecError, match="fit it on a pandas DataFrame"):
        infer.infer_contract(model, None)
    with pytest.raises(spec.ContractSpecError, match="takes 2 features, while the data file has 3"):
        infer.infer_contract(model, X.assign(c=1.0), exclude=("target",))


def test_differences_name_missing_extra_order_and_type_contradictions():
    X, y = _frame()
    found, _ = infer.found_contract(_pipeline(X, y), X)
    declared = spec.normalize_contract([{"name": "country", "type": "float"}, {"name": "region", "type": "int"},
                                        {"name": "mean radius", "type": "float"},
                                        {"name": "count of things", "type": "bool"}])
    problems = spec.differences(declared, found, found_from="the model")
    assert problems == ["'country' is declared float but the model has string (OneHotEncoder categories)",
                        "'count of things' is declared bool but the model has int (the data file's column is int64)"]
    reordered = [declared[1], declared[0], *declared[2:]]
    assert "another order" in spec.differences(reordered, found, found_from="the model")[0]
    assert "missing from the contract: count of things" in spec.differences(declared[:3], found,
                                                                            found_from="the model")[0]


def test_a_zero_one_column_may_be_declared_bool():
    found = [{"name": "flag", "type": "int", "source": "data", "also": ["bool"], "why": ""}]
    assert spec.differences([{"name": "flag", "type": "bool"}], found, found_from="the data file") == []


def test_coerce_frame_types_a_csv_like_serving():
    df = pd.DataFrame({"zip": [12345, 2222], "flag": ["true", "0"], "n": [1.0, np.nan], "when": ["2026-01-02", None]})
    contract = spec.normalize_contract([{"name": "zip", "type": "string"}, {"name": "flag", "type": "bool"},
                                        {"name": "n", "type": "int", "nullable": True},
                                        {"name": "when", "type": "datetime", "nullable": True}])
    frame = spec.coerce_frame(df, contract)
    assert frame["zip"].tolist() == ["12345", "2222"] and frame["flag"].tolist() == [True, False]
    assert frame["n"].dtype == np.float64 and np.isnan(frame["n"][1])
    assert str(frame["when"][0]) == "2026-01-02 00:00:00" and pd.isna(frame["when"][1])

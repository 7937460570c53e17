"""Strict parsing and validation (pure: no database)."""

import subprocess
import sys

import numpy as np
import pytest

from apps.deployments.contract import Contract, ContractError, parse_body, rows_to_matrix, split_body

C4 = Contract.from_spec([{"name": "a", "type": "float"}, {"name": "b", "type": "int"},
                         {"name": "c", "type": "bool"}, {"name": "d", "type": "float", "nullable": True}])


def test_rows_become_a_float_matrix_in_contract_order():
    rows = [{"d": None, "c": True, "b": 2, "a": 1.5}, {"a": -1, "b": 0, "c": False, "d": 3.25}]
    m = rows_to_matrix(rows, C4)
    assert m.dtype == np.float64 and m.shape == (2, 4)
    assert m[0, :3].tolist() == [1.5, 2.0, 1.0] and np.isnan(m[0, 3])
    assert m[1].tolist() == [-1.0, 0.0, 0.0, 3.25]


@pytest.mark.parametrize("row, field", [
    ({"a": "1.5", "b": 1, "c": True, "d": 1.0}, "instances[0].a"),
    ({"a": 1.0, "b": 1.0, "c": True, "d": 1.0}, "instances[0].b"),
    ({"a": 1.0, "b": 1, "c": 1, "d": 1.0}, "instances[0].c"),
    ({"a": True, "b": 1, "c": True, "d": 1.0}, "instances[0].a"),
    ({"a": None, "b": 1, "c": True, "d": 1.0}, "instances[0].a"),
    ({"a": {"x": 1}, "b": 1, "c": True, "d": 1.0}, "instances[0].a"),
    ({"a": 1.0, "b": 2**60, "c": True, "d": 1.0}, "instances[0].b"),
    ({"b": 1, "c": True, "d": 1.0}, "instances[0].a"),
    ({"a": 1.0, "b": 1, "c": True, "d": 1.0, "e": 1}, "instances[0].e"),
])
def test_no_silent_coercion(row, field):
    with pytest.raises(ContractError) as err:
        rows_to_matrix([row], C4)
    assert err.value.status == 422 and err.value.errors[0]["field"] == field


@pytest.mark.parametrize("raw, status, needle", [
    (b'{"a": NaN}', 422, "NaN"),
    (b'{"a": Infinity}', 422, "Infinity"),
    (b'{"a": 1, "a": 2}', 422, "Duplicate key 'a'"),
    (b'{"a": 1', 400, "Malformed JSON"),
    (b"[" * 200_000 + b"]" * 200_000, 400, "nested too deeply"),
    (b"\xc3\x28", 400, "not UTF-8"),
    (b"42", 422, "JSON object"),
])
def test_parse_body_is_strict(raw, status, needle):
    with pytest.raises(ContractError) as err:
        parse_body(raw)
    assert err.value.status == status and needle in err.value.message


def test_batch_limits_and_shape():
    with pytest.raises(ContractError) as err:
        split_body({"instances": [{}] * 11}, input_mode="inline", max_batch=10)
    assert err.value.status == 413
    with pytest.raises(ContractError):
        split_body({"instances": []}, input_mode="inline", max_batch=10)
    assert split_body({"entities": ["k"]}, input_mode="entity", max_batch=10) == ["k"]


def test_contract_refuses_unknown_types_naming_the_feature():
    with pytest.raises(ValueError, match="Feature 'country': type 'blob' is not one of float, int, bool, string, datetime"):
        Contract.from_spec([{"name": "country", "type": "blob"}])


def test_pure_modules_do_not_import_django():
    code = ("import apps.deployments.contract, apps.registry.contract, apps.registry.infer, apps.deployments.spool, apps.deployments.stats, sys; "
            "assert 'django' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)

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


def _outcome(fn, raw):
    try:
        value = fn(raw)
        return ("ok", value, repr(value))  # repr: 1 and 1.0, 0.0 and -0.0 differ
    except ContractError as exc:
        return ("error", exc.status, exc.message, exc.errors)


TRICKY_BODIES = [
    b'{"instances": [{"a": 1.5, "b": 2}]}',
    b'{"instances": [{"a": 1.5, "a": 2}]}',  # a duplicate in a row
    b'{"instances": [{"a": 1.5}], "instances": []}',  # a duplicate at the top
    b'{"instances": [{"a": {"x": 1, "x": 2}}]}',  # a duplicate in a nested object
    b'{"instances": [[{"a": 1, "a": 2}]]}',  # ... in an object inside a nested list
    b'{"instances": [{"a": "10:30", "b": 1}]}',  # a colon in a string
    b'{"instances": [{"a:b": 1, "a:b": 2}]}',  # colons in duplicate keys
    b'{"instances": [{"t": "2024-01-01T10:00:00Z"}]}',
    b'{"instances": [{"a": 123456789012345678901234567890}]}',  # beyond 64 bits: an int, not a float
    b'{"instances": [{"a": -9223372036854775809, "b": 18446744073709551616}]}',
    b'{"instances": [{"a": 9223372036854775807, "b": -9223372036854775808}]}',
    b'{"instances": [{"a": 0.30000000000000004, "b": -0.0, "c": -0, "d": 1E5, "e": 1e-400}]}',
    b'{"instances": [{"a": 1e400}]}',
    b'{"instances": [{"a": NaN}]}',
    b'{"instances": [{"a": -Infinity}]}',
    b'{"instances": [{"a": "x\\u0000y"}]}',
    b'{"instances": [{"a": "\\ud800"}]}',
    b'{"instances": [{"\\u0000": 1}]}',
    b'{"instances": [{"a": "caf\xc3\xa9"}]}',
    b'{"instances": [{"a": "\xc3\x28"}]}',
    b'\xef\xbb\xbf{"instances": []}',
    b' \n{"entities": ["C0001", "C:2"]} \t',
    b'{"entities": ["C0001"]}{}',
    b'{"instances": [{"a": 1}]',
    b'[{"a": 1}]',
    b'"text"',
    b'',
    b'{}',
    b'{"instances": [{}, {}, 3, "x", null, true]}',
    b"[" * 2000 + b"]" * 2000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
]


@pytest.mark.parametrize("raw", TRICKY_BODIES)
def test_parse_body_fast_path_answers_as_the_strict_parser(raw):
    from apps.deployments.contract import _parse_strict

    assert _outcome(parse_body, raw) == _outcome(_parse_strict, raw)


def test_parse_body_fast_path_is_taken_for_plain_bodies():
    from apps.deployments.contract import _parse_fast

    assert _parse_fast(b'{"instances": [{"a": 0.1, "b": 2, "c": true, "d": null, "e": "DE"}, {"a": 1.0}]}') == {
        "instances": [{"a": 0.1, "b": 2, "c": True, "d": None, "e": "DE"}, {"a": 1.0}]}
    assert _parse_fast(b'{"entities": ["C0001", "C0002"]}') == {"entities": ["C0001", "C0002"]}
    for raw in TRICKY_BODIES[1:5] + TRICKY_BODIES[8:10] + TRICKY_BODIES[13:18]:
        assert _parse_fast(raw) is None, raw


def test_parse_body_random_bodies_agree_with_the_strict_parser():
    import json
    import random

    from apps.deployments.contract import _parse_strict

    rng = random.Random(18)
    values = [0.1, -2.5e-300, 1e308, 3, -7, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, True, False, None, "x", "a:b",
              "é", [1, 2], {"k": 1}]
    for _ in range(3000):
        keys = [rng.choice("abcde") for _ in range(rng.randint(0, 6))]
        rows = [{k: rng.choice(values) for k in keys} for _ in range(rng.randint(0, 3))]
        text = json.dumps({"instances": rows}, ensure_ascii=False)
        if rng.random() < 0.3 and rows and keys:  # splice in a duplicate key
            text = text.replace("{", f'{{"{keys[0]}": 1, ', 1)
        raw = text.encode()
        assert _outcome(parse_body, raw) == _outcome(_parse_strict, raw), raw


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


# --- typed contracts: text, datetime, categories ----------------------------------------------------

MIXED = Contract.from_spec([
    {"name": "country", "type": "string", "categories": ["DE", "FR"], "unknown": "refuse"},
    {"name": "plan", "type": "string", "categories": ["basic", "pro"], "unknown": "pass"},
    {"name": "Monthly Spend ($)", "type": "float"},
    {"name": "seats", "type": "int", "nullable": True},
    {"name": "is new", "type": "bool"},
    {"name": "signup", "type": "datetime", "nullable": True},
    {"name": "note", "type": "string", "nullable": True},
])


def _row(**over):
    row = {"country": "DE", "plan": "pro", "Monthly Spend ($)": 12.5, "seats": 3, "is new": True,
           "signup": "2026-11-25T14:30:00Z", "note": "hello"}
    row.update(over)
    return row


def test_a_contract_with_text_is_not_the_numeric_fast_path():
    assert not MIXED.numeric and C4.numeric
    assert MIXED.kinds == ("s", "s", "f", "i", "b", "d", "s")


def test_rows_become_a_typed_frame_in_contract_order():
    from apps.deployments.contract import rows_to_frame

    frame = rows_to_frame([_row(), _row(seats=None, signup=None, note=None, plan="team")], MIXED)
    assert list(frame.columns) == list(MIXED.names)
    assert frame["Monthly Spend ($)"].dtype == np.float64 and frame["is new"].dtype == bool
    assert frame["seats"].dtype == np.float64 and np.isnan(frame["seats"][1])  # a null int: float with NaN
    assert str(frame["signup"].dtype) == "datetime64[ns]" and str(frame["signup"][0]) == "2026-11-25 14:30:00"
    assert frame["country"].tolist() == ["DE", "DE"] and frame["plan"][1] == "team"  # "pass": let through
    assert frame["note"].isna()[1]


@pytest.mark.parametrize("over, field, needle", [
    ({"country": "US"}, "instances[1].country", "the string 'US' is not a known category (known: DE, FR)"),
    ({"country": 3}, "instances[1].country", "must be a string, got int"),
    ({"country": None}, "instances[1].country", "null is not allowed"),
    ({"Monthly Spend ($)": "12.5"}, "instances[1].Monthly Spend ($)", "must be a number"),
    ({"seats": 2.5}, "instances[1].seats", "must be an integer"),
    ({"is new": 1}, "instances[1].is new", "must be a boolean"),
    ({"signup": "yesterday"}, "instances[1].signup", "ISO 8601"),
    ({"note": "x" * 10_001}, "instances[1].note", "longer than 10,000 characters"),
])
def test_typed_rows_are_refused_naming_feature_and_row(over, field, needle):
    from apps.deployments.contract import rows_to_frame

    with pytest.raises(ContractError) as err:
        rows_to_frame([_row(), _row(**over)], MIXED)
    assert err.value.status == 422 and err.value.errors[0]["field"] == field and needle in err.value.message


def test_an_int_feature_declared_categorical_checks_its_categories():
    from apps.deployments.contract import rows_to_frame

    c = Contract.from_spec([{"name": "region", "type": "int", "categorical": True, "categories": [1, 2],
                             "unknown": "refuse"}])
    assert not c.numeric  # refusing unknown categories needs the checked path
    assert rows_to_frame([{"region": 2}], c)["region"].tolist() == [2]
    with pytest.raises(ContractError, match="the int 7 is not a known category|is not a known category"):
        rows_to_frame([{"region": 7}], c)


def test_online_rows_keep_the_declared_types_for_the_log():
    from apps.deployments.contract import online_rows, typed_rows_to_model_input

    c = Contract.from_spec([{"name": "active", "type": "bool"}, {"name": "n", "type": "int"},
                            {"name": "x", "type": "float"}])
    typed = online_rows([{"active": 1.0, "n": 3.0, "x": 2}], c, ["k1"])
    assert typed == [{"active": True, "n": 3, "x": 2.0}]  # logged as true, like the reference profile
    assert typed_rows_to_model_input(typed, c).tolist() == [[1.0, 3.0, 2.0]]
    with pytest.raises(ContractError, match="'active' for entity 'k1' is not a boolean"):
        online_rows([{"active": 0.5, "n": 3, "x": 1.0}], c, ["k1"])
    mixed = Contract.from_spec([{"name": "country", "type": "string", "categories": ["DE"]}])
    with pytest.raises(ContractError, match="not a known category"):
        online_rows([{"country": "US"}], mixed, ["k1"])
    assert typed_rows_to_model_input(online_rows([{"country": "DE"}], mixed, ["k1"]), mixed)["country"][0] == "DE"

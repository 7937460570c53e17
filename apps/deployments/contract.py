"""Strict request parsing and validation against a model's input contract (pure: no Django).

The contract (``apps.registry.contract``) is an ordered list of typed features — float, int, bool,
string (with optional categories and an unknown-category policy), datetime — each maybe nullable. Rows
are JSON objects. Nothing is coerced: ``"1.5"`` is not a float, ``true`` is not a number, ``1.5`` is not
an integer, ``3`` is not a string; NaN/Infinity tokens and duplicate keys are refused at parse time.
Errors carry the field (``instances[3].amount``) and a message naming feature and row.

A contract of numbers and bools becomes one float64 matrix (``rows_to_matrix``, the fast path); one with
text or datetime features (or categories to enforce) becomes a typed pandas DataFrame (``rows_to_frame``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import orjson

from apps.common.edge import find_bad_text, json_text_may_be_bad
from apps.registry import contract as spec

KIND_OF = {"float": "f", "int": "i", "bool": "b", "string": "s", "datetime": "d"}
STRING_MAX_CHARS = 10_000


class ContractError(Exception):
    """Bad request body. ``status`` is the HTTP status the transport should answer with."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 422,
                 errors: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors if errors is not None else ([{"field": field, "message": message}] if field else [])


@dataclass(frozen=True)
class Contract:
    names: tuple[str, ...]
    kinds: tuple[str, ...]  # "f" float, "i" int, "b" bool, "s" string, "d" datetime
    nullable: tuple[bool, ...]
    # per feature: the known categories (string / categorical int) or None, and the unknown policy
    categories: tuple[frozenset | None, ...] = ()
    refuse_unknown: tuple[bool, ...] = ()
    spec: tuple[dict, ...] = ()
    # every feature is a number or bool (and no category list to enforce): rows become one float64
    # matrix — the fast path; decided once here, not per request
    numeric: bool = True

    @classmethod
    def from_spec(cls, items: list[dict]) -> Contract:
        """Raises ValueError (a ContractSpecError naming the feature) for an invalid contract."""
        if not items:
            return cls((), (), ())
        canonical = spec.normalize_contract(list(items))
        kinds = tuple(KIND_OF[c["type"]] for c in canonical)
        refuse = tuple(c.get("unknown") == "refuse" for c in canonical)
        return cls(
            names=tuple(c["name"] for c in canonical), kinds=kinds,
            nullable=tuple(c["nullable"] for c in canonical),
            categories=tuple(frozenset(c["categories"]) if "categories" in c else None for c in canonical),
            refuse_unknown=refuse, spec=tuple(canonical),
            numeric=all(k in "fib" for k in kinds) and not any(refuse),
        )

    @property
    def width(self) -> int:
        return len(self.names)


def _no_constant(token: str):
    raise ContractError(f"{token} is not allowed in the request body (not valid JSON)", status=422,
                        errors=[{"field": None, "message": f"{token} is not a valid JSON number"}])


def _pairs(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ContractError(f"Duplicate key {key!r} in a JSON object", field=key)
            seen.add(key)
    return obj


_decoder = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_no_constant)


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19  # 2**63 has 19 digits


def _parse_fast(raw: bytes) -> dict | None:
    """The body parsed by orjson when that is provably what the strict parser below returns, else None.

    orjson differs from the strict parser in three ways, each excluded here: it keeps the last of duplicate
    keys (every object member has exactly one ``:`` outside strings, so when the body's ``:`` count equals the
    members counted in the top-level object and in the objects of its lists, there is no duplicate anywhere —
    a ``:`` inside a string or a nested object only sends the body down the strict path); it reads an integer
    beyond 64 bits as a float (no run of 19 digits); and ``\\u`` escapes may carry a NUL or an unpaired
    surrogate that the strict path refuses. Any orjson error (NaN, malformed JSON, bad UTF-8, nesting) also
    takes the strict path, which names the problem as before."""
    if b"\\u" in raw or _LONG_DIGIT_RUN in raw.translate(_DIGITS_AS_ZERO):
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict:
        return None
    members = len(body)
    for value in body.values():
        if type(value) is list:
            for item in value:
                if type(item) is dict:
                    members += len(item)
    return body if raw.count(b":") == members else None


def parse_body(raw: bytes) -> dict:
    """Parse the JSON body strictly. 400 for malformed JSON, 422 for duplicate keys / NaN."""
    body = _parse_fast(raw)
    return body if body is not None else _parse_strict(raw)


def _parse_strict(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError("The request body is not UTF-8", status=400) from exc
    try:
        body = _decoder.decode(text)
    except ContractError:
        raise
    except RecursionError as exc:
        raise ContractError("The JSON body is nested too deeply", status=400) from exc
    except ValueError as exc:
        raise ContractError(f"Malformed JSON: {exc}", status=400) from exc
    if not isinstance(body, dict):
        raise ContractError('The body must be a JSON object: {"instances": [...]} or {"entities": [...]}')
    if json_text_may_be_bad(text):
        found = find_bad_text(body)
        if found:
            raise ContractError(f"{found[0]} {found[1]}", field=found[0])
    return body


def _check_batch(items, key: str, max_batch: int) -> list:
    if not isinstance(items, list):
        raise ContractError(f"{key!r} must be a list", field=key)
    if not items:
        raise ContractError(f"{key!r} is empty: send at least one", field=key)
    if len(items) > max_batch:
        raise ContractError(f"Batch of {len(items)} is larger than the limit of {max_batch}", field=key,
                            status=413)
    return items


def split_body(body: dict, *, input_mode: str, max_batch: int) -> list:
    """The list of instances (inline mode) or entity keys (entity mode), checked for shape only."""
    expected = "instances" if input_mode == "inline" else "entities"
    other = "entities" if expected == "instances" else "instances"
    extra = set(body) - {expected}
    if other in body:
        raise ContractError(f"This deployment takes {expected!r}, not {other!r}", field=other)
    if extra:
        name = sorted(extra)[0]
        raise ContractError(f"Unknown top-level key {name!r}: send only {expected!r}", field=name)
    if expected not in body:
        raise ContractError(f"Missing {expected!r}", field=expected)
    return _check_batch(body[expected], expected, max_batch)


def _describe(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "an object"
    return type(value).__name__


def rows_to_matrix(rows: list, contract: Contract) -> np.ndarray:
    """Validate inline rows and return the float64 matrix in contract order."""
    names, kinds, nullable = contract.names, contract.kinds, contract.nullable
    width = len(names)
    nameset = frozenset(names)
    out = np.empty((len(rows), width), dtype=np.float64)
    for r, row in enumerate(rows):
        _check_keys(r, row, names, nameset, width)
        line = out[r]
        for c in range(width):
            value = row[names[c]]
            kind = kinds[c]
            tv = type(value)
            if tv is float:
                if kind != "f":
                    if kind == "i":
                        raise ContractError(f"instances[{r}].{names[c]} must be an integer, got {value!r}",
                                            field=f"instances[{r}].{names[c]}")
                    raise _type_error(r, names[c], kind, value)
                if not math.isfinite(value):  # pragma: no cover - the parser already refuses NaN tokens
                    raise ContractError(f"instances[{r}].{names[c]} must be finite", field=f"instances[{r}].{names[c]}")
                line[c] = value
            elif tv is int:
                if kind == "b":
                    raise _type_error(r, names[c], kind, value)
                if abs(value) > 2**53:
                    raise ContractError(f"instances[{r}].{names[c]} is too large to be represented exactly",
                                        field=f"instances[{r}].{names[c]}")
                line[c] = value
            elif tv is bool:
                if kind != "b":
                    raise _type_error(r, names[c], kind, value)
                line[c] = 1.0 if value else 0.0
            elif value is None and nullable[c]:
                line[c] = math.nan
            else:
                raise _type_error(r, names[c], kind, value)
    return out


def _type_error(r: int, name: str, kind: str, value, where: str = "instances") -> ContractError:
    expected = {"f": "a number", "i": "an integer", "b": "a boolean", "s": "a string",
                "d": "an ISO 8601 date-time string"}[kind]
    extra = " (null is not allowed for this feature)" if value is None else ""
    return ContractError(f"{where}[{r}].{name} must be {expected}, got {_describe(value)}{extra}",
                         field=f"{where}[{r}].{name}")


def _unknown_category(r: int, name: str, value, known: frozenset, where: str = "instances") -> ContractError:
    shown = sorted(map(str, known))
    listing = ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")
    return ContractError(f"{where}[{r}].{name}: {_describe(value)} is not a known category (known: {listing})",
                         field=f"{where}[{r}].{name}")


def _check_datetime(r: int, name: str, value: str, where: str = "instances") -> None:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ContractError(f"{where}[{r}].{name} must be an ISO 8601 date-time such as 2026-11-25T14:30:00Z, got "
                            f"{_describe(value)}", field=f"{where}[{r}].{name}") from None


def _check_keys(r: int, row, names, nameset, width) -> None:
    if not isinstance(row, dict):
        raise ContractError(f"instances[{r}] must be an object of feature values, got {_describe(row)}",
                            field=f"instances[{r}]")
    if len(row) != width or row.keys() != nameset:
        missing = [n for n in names if n not in row]
        if missing:
            raise ContractError(f"instances[{r}] is missing feature {missing[0]!r}"
                                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                                field=f"instances[{r}].{missing[0]}")
        extra = sorted(k for k in row if k not in nameset)
        raise ContractError(f"instances[{r}] has unknown feature {extra[0]!r}", field=f"instances[{r}].{extra[0]}")


def check_value(r: int, c: int, value, contract: Contract, where: str = "instances"):
    """One value against its feature (no coercion); returns it. Raises ContractError naming feature and row."""
    kind = contract.kinds[c]
    name = contract.names[c]
    tv = type(value)
    if value is None:
        if contract.nullable[c]:
            return None
        raise _type_error(r, name, kind, value, where)
    if kind == "s":
        if tv is not str:
            raise _type_error(r, name, kind, value, where)
        if len(value) > STRING_MAX_CHARS:
            raise ContractError(f"{where}[{r}].{name} is longer than {STRING_MAX_CHARS:,} characters",
                                field=f"{where}[{r}].{name}")
    elif kind == "f":
        if tv is int:
            if abs(value) > 2**53:
                raise ContractError(f"{where}[{r}].{name} is too large to be represented exactly",
                                    field=f"{where}[{r}].{name}")
        elif tv is not float:
            raise _type_error(r, name, kind, value, where)
        elif not math.isfinite(value):
            raise ContractError(f"{where}[{r}].{name} must be finite", field=f"{where}[{r}].{name}")
    elif kind == "i":
        if tv is not int:
            if tv is float:
                raise ContractError(f"{where}[{r}].{name} must be an integer, got {value!r}",
                                    field=f"{where}[{r}].{name}")
            raise _type_error(r, name, kind, value, where)
        if abs(value) > 2**53:
            raise ContractError(f"{where}[{r}].{name} is too large to be represented exactly",
                                field=f"{where}[{r}].{name}")
    elif kind == "b":
        if tv is not bool:
            raise _type_error(r, name, kind, value, where)
    else:  # datetime
        if tv is not str:
            raise _type_error(r, name, kind, value, where)
        _check_datetime(r, name, value, where)
    known = contract.categories[c] if contract.categories else None
    if known is not None and contract.refuse_unknown[c] and value not in known:
        raise _unknown_category(r, name, value, known, where)
    return value


def rows_to_frame(rows: list, contract: Contract):
    """Validate inline rows of a contract with string/datetime features (or refused unknown categories)
    and return the typed pandas DataFrame in contract order (``apps.registry.contract.typed_frame``)."""
    names = contract.names
    width = len(names)
    nameset = frozenset(names)
    columns = [[None] * len(rows) for _ in range(width)]
    for r, row in enumerate(rows):
        _check_keys(r, row, names, nameset, width)
        for c in range(width):
            columns[c][r] = check_value(r, c, row[names[c]], contract)
    return spec.typed_frame(columns, list(contract.spec))


def check_entity_keys(keys: list) -> list[str]:
    out = []
    for i, key in enumerate(keys):
        if type(key) is str:
            if not key or len(key) > 200:
                raise ContractError(f"entities[{i}] must be a non-empty key of at most 200 characters",
                                    field=f"entities[{i}]")
            out.append(key)
        elif type(key) is int:
            out.append(str(key))
        else:
            raise ContractError(f"entities[{i}] must be a string or integer key, got {_describe(key)}",
                                field=f"entities[{i}]")
    if len(set(out)) != len(out):
        raise ContractError("The same entity key is given twice", field="entities")
    return out


def values_to_matrix(values: list[dict], contract: Contract, keys: list[str]) -> np.ndarray:
    """Online-store rows (one dict per key, None where missing) → matrix; missing values refused."""
    out = np.empty((len(values), contract.width), dtype=np.float64)
    for r, row in enumerate(values):
        for c, name in enumerate(contract.names):
            value = row.get(name) if row else None
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                if contract.nullable[c]:
                    out[r, c] = math.nan
                    continue
                raise ContractError(f"The online store has no value of {name!r} for entity {keys[r]!r}",
                                    field=f"entities[{r}]")
            if isinstance(value, bool):
                value = float(value)
            try:
                out[r, c] = float(value)
            except (TypeError, ValueError) as exc:
                raise ContractError(f"The online store value of {name!r} for entity {keys[r]!r} is not numeric",
                                    field=f"entities[{r}]") from exc
    return out


def _online_value(value, kind: str):
    """An online-store value as the declared type (the store keeps JSON: ints may come back as floats,
    bools as 0/1); raises TypeError/ValueError when it does not fit."""
    if kind == "f":
        if isinstance(value, bool):
            return float(value)
        return float(value)
    if kind == "i":
        if isinstance(value, bool) or not float(value).is_integer():
            raise ValueError("not an integer")
        return int(value)
    if kind == "b":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise ValueError("not a boolean")
    if kind == "d":
        if not isinstance(value, str):
            raise ValueError("not a date-time string")
        datetime.fromisoformat(value)
        return value
    if isinstance(value, (dict, list)):
        raise ValueError("not a string")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def online_rows(values: list[dict], contract: Contract, keys: list[str]) -> list[dict]:
    """Online-store rows (one dict per key, None where missing) → typed rows in contract order; a missing
    value of a non-nullable feature, a value of another type or a refused unknown category is a 422
    naming the feature and the entity."""
    out = []
    for r, row in enumerate(values):
        typed = {}
        for c, name in enumerate(contract.names):
            value = row.get(name) if row else None
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                if contract.nullable[c]:
                    typed[name] = None
                    continue
                raise ContractError(f"The online store has no value of {name!r} for entity {keys[r]!r}",
                                    field=f"entities[{r}]")
            kind = contract.kinds[c]
            try:
                value = _online_value(value, kind)
            except (TypeError, ValueError) as exc:
                expected = {"f": "numeric", "i": "an integer", "b": "a boolean", "s": "a string",
                            "d": "an ISO 8601 date-time"}[kind]
                raise ContractError(f"The online store value of {name!r} for entity {keys[r]!r} is not {expected}",
                                    field=f"entities[{r}]") from exc
            known = contract.categories[c] if contract.categories else None
            if known is not None and contract.refuse_unknown[c] and value not in known:
                raise ContractError(f"The online store value of {name!r} for entity {keys[r]!r} "
                                    f"({_describe(value)}) is not a known category", field=f"entities[{r}]")
            typed[name] = value
        out.append(typed)
    return out


def typed_rows_to_model_input(rows: list[dict], contract: Contract):
    """Already-typed rows (``online_rows``) → the float64 matrix (numeric contracts) or the typed frame."""
    if contract.numeric:
        out = np.empty((len(rows), contract.width), dtype=np.float64)
        for r, row in enumerate(rows):
            for c, name in enumerate(contract.names):
                v = row[name]
                out[r, c] = math.nan if v is None else float(v)
        return out
    columns = [[row[name] for row in rows] for name in contract.names]
    return spec.typed_frame(columns, list(contract.spec))

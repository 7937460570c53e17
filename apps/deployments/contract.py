"""Strict request parsing and validation against a model's input contract (pure: no Django).

A contract is an ordered list of ``(name, type, nullable)``. Rows are JSON objects. Nothing is coerced:
``"1.5"`` is not a float, ``true`` is not a number, ``1.5`` is not an integer; NaN/Infinity tokens and
duplicate keys are refused at parse time. Errors carry the field (``instances[3].amount``) and a message.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from apps.common.edge import find_bad_text, json_text_may_be_bad

FLOAT_TYPES = frozenset({"float", "double", "number", "numeric", "float32", "float64", "real"})
INT_TYPES = frozenset({"int", "integer", "int32", "int64", "long"})
BOOL_TYPES = frozenset({"bool", "boolean"})
SUPPORTED_TYPES = FLOAT_TYPES | INT_TYPES | BOOL_TYPES


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
    kinds: tuple[str, ...]  # "f" float, "i" int, "b" bool
    nullable: tuple[bool, ...]

    @classmethod
    def from_spec(cls, spec: list[dict]) -> Contract:
        names, kinds, nullable = [], [], []
        for item in spec:
            typ = str(item.get("type", "float")).lower()
            if typ in FLOAT_TYPES:
                kinds.append("f")
            elif typ in INT_TYPES:
                kinds.append("i")
            elif typ in BOOL_TYPES:
                kinds.append("b")
            else:
                raise ValueError(f"Feature {item.get('name')!r} has type {typ!r}, which cannot be served as a number")
            names.append(str(item["name"]))
            nullable.append(bool(item.get("nullable", False)))
        if len(set(names)) != len(names):
            raise ValueError("The input contract names a feature twice")
        return cls(tuple(names), tuple(kinds), tuple(nullable))

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


def parse_body(raw: bytes) -> dict:
    """Parse the JSON body strictly. 400 for malformed JSON, 422 for duplicate keys / NaN."""
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


def _type_error(r: int, name: str, kind: str, value) -> ContractError:
    expected = {"f": "a number", "i": "an integer", "b": "a boolean"}[kind]
    extra = " (null is not allowed for this feature)" if value is None else ""
    return ContractError(f"instances[{r}].{name} must be {expected}, got {_describe(value)}{extra}",
                         field=f"instances[{r}].{name}")


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

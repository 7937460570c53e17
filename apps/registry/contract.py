"""Typed input contracts: the rule for one model's inputs, shared by the registry and serving.

Pure module (no Django): numpy and pandas only, so it is tested without a database.

A contract is an ordered list of features, each a JSON object::

    {"name": "Monthly Spend ($)", "type": "float", "nullable": false}
    {"name": "country", "type": "string", "categories": ["DE", "FR", "US"], "unknown": "refuse"}
    {"name": "region_code", "type": "int", "categorical": true, "categories": [1, 2, 3], "unknown": "pass"}
    {"name": "signup", "type": "datetime", "nullable": true}

* ``type``: ``float``, ``int``, ``bool``, ``string`` or ``datetime`` (aliases: ``str``/``category``/``text``
  → string, ``double``/``number`` → float, ``integer``/``int64`` → int, ``boolean`` → bool,
  ``timestamp`` → datetime).
* ``nullable`` (default false): ``null`` is accepted for this feature.
* ``categories`` (string, or int with ``"categorical": true``): the known values; ``unknown`` says what
  serving does with another value — ``"refuse"`` (default: 422 naming feature and row) or ``"pass"``
  (the model gets it; monitoring counts it as an unseen category).
* ``categorical`` (int only): monitor the feature as categories (chi-square, Jensen–Shannon) instead of
  as numbers (KS, Wasserstein). String and bool features are always categorical.

Feature names: see :data:`NAME_RULE` — any text a pandas column can be named, within limits.
"""

from __future__ import annotations

import math
import unicodedata

TYPES = ("float", "int", "bool", "string", "datetime")
ALIASES = {
    "float": "float", "double": "float", "number": "float", "numeric": "float", "float32": "float",
    "float64": "float", "real": "float",
    "int": "int", "integer": "int", "int32": "int", "int64": "int", "long": "int",
    "bool": "bool", "boolean": "bool",
    "string": "string", "str": "string", "category": "string", "categorical": "string", "text": "string",
    "datetime": "datetime", "timestamp": "datetime", "date": "datetime",
}
NUMERIC = frozenset({"float", "int"})
UNKNOWN_POLICIES = ("refuse", "pass")
NAME_MAX = 200
MAX_FEATURES = 2000
MAX_CATEGORIES = 10_000
CATEGORY_MAX_CHARS = 1000
# NAME_RULE as a JSON Schema pattern (with maxLength NAME_MAX): not only whitespace, no Cc control character.
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
NAME_RULE = (f"a feature name is any text of 1 to {NAME_MAX} characters that is not only spaces and has no "
             "control characters (tab, new line, NUL, …); spaces, punctuation and any letters are fine")


class ContractSpecError(ValueError):
    """An invalid contract; the message names the feature and the rule."""


def canonical_type(value) -> str | None:
    return ALIASES.get(str(value if value is not None else "float").strip().lower())


def name_problem(name) -> str | None:
    """Why ``name`` is not a valid feature name (None when it is)."""
    if not isinstance(name, str):
        return f"{name!r} is not text"
    if not name.strip():
        return "the name is empty"
    if len(name) > NAME_MAX:
        return f"{name[:40]!r}… is {len(name)} characters long"
    bad = next((ch for ch in name if unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        return f"{name!r} contains the control character U+{ord(bad):04X}"
    return None


def _categories(name: str, typ: str, raw) -> list:
    if not isinstance(raw, (list, tuple)):
        raise ContractSpecError(f"Feature {name!r}: categories must be a list")
    if len(raw) > MAX_CATEGORIES:
        raise ContractSpecError(f"Feature {name!r}: at most {MAX_CATEGORIES:,} categories")
    out = []
    for value in raw:
        if typ == "string":
            if not isinstance(value, str) or len(value) > CATEGORY_MAX_CHARS:
                raise ContractSpecError(f"Feature {name!r}: string categories must be texts of at most "
                                        f"{CATEGORY_MAX_CHARS} characters (got {value!r:.60})")
        else:
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                value = int(value)
            if type(value) is not int:
                raise ContractSpecError(f"Feature {name!r}: int categories must be integers (got {value!r:.60})")
        out.append(value)
    if len(set(out)) != len(out):
        raise ContractSpecError(f"Feature {name!r}: a category is listed twice")
    return out


def normalize_feature(item, position: int) -> dict:
    """One feature in canonical form; raises ContractSpecError naming the feature and the rule."""
    if not isinstance(item, dict):
        raise ContractSpecError(f"Feature {position}: expected an object with name and type")
    name = item.get("name")
    problem = name_problem(name)
    if problem:
        raise ContractSpecError(f"Feature {position}: {problem}; {NAME_RULE}")
    typ = canonical_type(item.get("type", "float"))
    if typ is None:
        raise ContractSpecError(f"Feature {name!r}: type {item.get('type')!r} is not one of {', '.join(TYPES)}")
    unknown_keys = set(item) - {"name", "type", "nullable", "categories", "unknown", "categorical", "description"}
    if unknown_keys:
        raise ContractSpecError(f"Feature {name!r}: unknown key(s) {', '.join(sorted(unknown_keys))}")
    nullable = item.get("nullable", False)
    if not isinstance(nullable, bool):
        raise ContractSpecError(f"Feature {name!r}: nullable must be true or false")
    out = {"name": name, "type": typ, "nullable": nullable}
    categorical = item.get("categorical", None)
    if categorical is not None and not isinstance(categorical, bool):
        raise ContractSpecError(f"Feature {name!r}: categorical must be true or false")
    if categorical and typ not in ("int", "string"):
        raise ContractSpecError(f"Feature {name!r}: only int features can be declared categorical "
                                "(string and bool features always are)")
    if typ == "int" and categorical:
        out["categorical"] = True
    cats = item.get("categories")
    if cats is not None:
        if not (typ == "string" or (typ == "int" and categorical)):
            raise ContractSpecError(f"Feature {name!r}: categories are for string features and int features "
                                    "declared categorical")
        out["categories"] = _categories(name, typ, cats)
    policy = item.get("unknown")
    if policy is not None:
        if policy not in UNKNOWN_POLICIES:
            raise ContractSpecError(f"Feature {name!r}: unknown must be 'refuse' or 'pass'")
        if "categories" not in out:
            raise ContractSpecError(f"Feature {name!r}: an unknown-category policy needs a list of categories")
    if "categories" in out:
        out["unknown"] = policy or "refuse"
    return out


def normalize_contract(spec) -> list[dict]:
    """The canonical contract; raises ContractSpecError (names unique, at least one feature)."""
    if not isinstance(spec, list) or not spec:
        raise ContractSpecError("Declare at least one input feature")
    if len(spec) > MAX_FEATURES:
        raise ContractSpecError(f"At most {MAX_FEATURES} features")
    out, seen = [], set()
    for i, item in enumerate(spec, 1):
        feature = normalize_feature(item, i)
        if feature["name"] in seen:
            raise ContractSpecError(f"Feature {feature['name']!r} is declared twice")
        seen.add(feature["name"])
        out.append(feature)
    return out


def is_categorical(feature: dict) -> bool:
    """Monitored as categories (chi-square / Jensen–Shannon) rather than as numbers."""
    typ = canonical_type(feature.get("type", "float"))
    return typ in ("string", "bool") or (typ == "int" and bool(feature.get("categorical")))


def is_numeric_only(contract: list[dict]) -> bool:
    return all(canonical_type(c.get("type", "float")) in ("float", "int", "bool") for c in contract)


def parse_contract_text(text: str) -> list[dict]:
    """The form's text: a JSON list, or one ``name:type`` per line (names may contain spaces, commas and
    colons: the type is after the last colon, so a name with a colon needs its type), or ``a:float, b:int`` on one line. A bare name is float;
    ``?`` after the type makes the feature nullable (``age:int?``)."""
    import json

    text = (text or "").strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ContractSpecError(f"The contract is not valid JSON: {exc}") from exc
        return value
    parts = text.splitlines() if "\n" in text else text.split(",")
    items = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        name, sep, typ = part.rpartition(":")
        if not sep:
            name, typ = part, "float"
        typ = typ.strip()
        if canonical_type(typ.rstrip("?") or "float") is None:
            raise ContractSpecError(f"Feature {name.strip()!r}: type {typ!r} is not one of {', '.join(TYPES)} "
                                    "(the type goes after the last ':')")
        nullable = typ.endswith("?")
        items.append({"name": name.strip(), "type": typ.rstrip("?") or "float", "nullable": nullable})
    return items


def contract_text(contract: list[dict]) -> str:
    """The contract in the form's one-per-line text format."""
    return "\n".join(f"{c['name']}:{c['type']}{'?' if c.get('nullable') else ''}" for c in contract)


def differences(declared: list[dict], found: list[dict], *, found_from: str) -> list[str]:
    """Contradictions between a declared contract and one read from the model/data (``found``):
    missing or extra features, another order, and types of another family (number vs string vs bool vs
    datetime; ``int`` vs ``float`` is not a contradiction). Each item is a sentence for people."""
    problems = []
    dnames = [c["name"] for c in declared]
    fnames = [c["name"] for c in found]
    missing = [n for n in fnames if n not in dnames]
    extra = [n for n in dnames if n not in fnames]
    if missing:
        problems.append(f"{found_from} expects feature(s) missing from the contract: {', '.join(missing)}")
    if extra:
        problems.append(f"the contract declares feature(s) {found_from} does not have: {', '.join(extra)}")
    if not missing and not extra and dnames != fnames:
        problems.append(f"the contract lists the features in another order than {found_from} ({', '.join(fnames)})")
    by_name = {c["name"]: c for c in found}

    def family(t):
        t = canonical_type(t)
        return "number" if t in NUMERIC else t

    for c in declared:
        other = by_name.get(c["name"])
        if other is None or other.get("source") == "default":
            continue
        if family(c["type"]) != family(other["type"]) and family(c["type"]) not in other.get("also", ()):
            why = f" ({other['why']})" if other.get("why") else ""
            problems.append(f"{c['name']!r} is declared {c['type']} but {found_from} has {other['type']}{why}")
    return problems


# --- typed frames (serving and validation build the model's input the same way) ------------------


def _datetime_column(values):
    import pandas as pd

    s = pd.to_datetime(pd.Series(values, dtype="object"), errors="coerce", utc=True, format="ISO8601")
    return s.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def epoch_seconds(values):
    """Date-times as float seconds since 1970-01-01 UTC (missing or unparseable → NaN): ISO 8601 text (a time
    without zone is UTC, as serving reads it), datetime64 values or Timestamps. What drift monitoring compares
    for a ``datetime`` feature (the reference profile and the logged inputs alike)."""
    import numpy as np
    import pandas as pd

    s = pd.to_datetime(pd.Series(values, dtype="object"), errors="coerce", utc=True, format="ISO8601")
    return ((s - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype="float64", na_value=np.nan)


def typed_column(values, typ: str):
    """One column as the array the model gets: float → float64 (null → NaN); int → int64 (float64 with
    NaN when a value is null); bool → bool (object with None when a value is null); string → text (pandas'
    string dtype, null → missing); datetime → datetime64[ns] in UTC without zone (null → NaT)."""
    import numpy as np

    if typ == "float":
        return np.array(values, dtype="float64")
    if typ == "int":
        if any(v is None for v in values):
            return np.array(values, dtype="float64")
        return np.array(values, dtype="int64")
    if typ == "bool":
        if any(v is None for v in values):
            return np.array(values, dtype=object)
        return np.array(values, dtype=bool)
    if typ == "datetime":
        return _datetime_column(values)
    return np.array(values, dtype=object)


def typed_frame(columns: list, contract: list[dict]):
    """A pandas DataFrame with the declared dtypes, columns in contract order (see ``typed_column``)."""
    import pandas as pd

    data = {c["name"]: typed_column(col, canonical_type(c.get("type"))) for c, col in zip(contract, columns, strict=True)}
    return pd.DataFrame(data, copy=False)


def coerce_frame(df, contract: list[dict]):
    """A data file's columns (CSV/Parquet, as pandas read them) as the typed frame serving would build:
    numbers that are whole numbers for int features; "1"/"true"/"yes" → True for bool; text for string
    (a CSV's 12 becomes "12"); ISO 8601 for datetime. Values that do not fit become missing."""
    import numpy as np
    import pandas as pd

    data = {}
    for c in contract:
        s = df[c["name"]]
        typ = canonical_type(c.get("type"))
        if typ in ("float", "int"):  # vectorised: training files may have millions of rows
            num = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy(dtype="float64", na_value=np.nan)
            num = np.where(np.isfinite(num), num, np.nan)
            if typ == "int":
                num = np.where(num == np.floor(num), num, np.nan)
                data[c["name"]] = num if np.isnan(num).any() else num.astype("int64")
            else:
                data[c["name"]] = num
            continue
        if typ == "bool":
            values = [None if _missing(v) else (bool(v) if isinstance(v, (bool, np.bool_, int, np.integer, float))
                                                 else str(v).strip().lower() in ("1", "true", "yes", "1.0"))
                      for v in s.tolist()]
        elif typ == "datetime":
            values = [None if _missing(v) else (v.isoformat() if hasattr(v, "isoformat") else str(v)) for v in s.tolist()]
        else:
            values = [None if _missing(v) else _text(v) for v in s.tolist()]
        data[c["name"]] = typed_column(values, typ)
    frame = pd.DataFrame(data, copy=False)
    frame.index = df.index
    return frame


def _missing(value) -> bool:
    import pandas as pd

    if value is None:
        return True
    try:
        result = pd.isna(value)  # NaN, NaT, pd.NA
    except (TypeError, ValueError):
        return False
    return bool(result) if getattr(result, "ndim", 0) == 0 else False


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

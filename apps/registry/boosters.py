"""Static checks of XGBoost and LightGBM native model files (pure: no Django, no xgboost/lightgbm import).

These formats are data, not code: XGBoost saves JSON or UBJSON (binary JSON), LightGBM a text file.
Nothing in them is ever unpickled. Before the library's own parser sees a byte (in the sandboxed
loader, apps.registry.sandbox), the file is read here with bounded memory and refused, with the reason,
when it is not what it claims: binary data in a text model, a truncated stream, sizes or counts declared
beyond the file or beyond the limits below, inconsistent tree arrays, an objective the portal cannot
serve.

- ``read_xgboost(path)`` → ``BoosterInfo``: JSON through the stdlib parser (call it where memory is
  limited, i.e. in the sandbox), UBJSON through a small decoder that checks every declared length
  against the bytes left and keeps typed numeric arrays as their lengths only.
- ``read_lightgbm(path)`` → ``BoosterInfo``: a streaming line scan (header, every ``Tree=`` block, the
  ``end of trees`` marker).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field

MAX_FEATURES = 100_000
MAX_CLASSES = 10_000
MAX_TREES = 1_000_000
MAX_NODES = 1 << 22  # per tree
MAX_LEAVES = 1 << 17  # LightGBM's own upper bound on num_leaves
MAX_DEPTH = 64  # nesting of UBJSON containers
MAX_LINE = 64 * 1024 * 1024

XGB_CLASSIFIER_OBJECTIVES = frozenset({"binary:logistic", "multi:softprob", "multi:softmax"})
XGB_REGRESSOR_OBJECTIVES = frozenset({
    "reg:squarederror", "reg:squaredlogerror", "reg:absoluteerror", "reg:pseudohubererror", "reg:logistic",
    "count:poisson", "reg:gamma", "reg:tweedie",
})
LGB_CLASSIFIER_OBJECTIVES = frozenset({"binary", "multiclass"})
LGB_REGRESSOR_OBJECTIVES = frozenset({
    "regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie",
})


class BoosterRejected(Exception):
    """The file is not a servable, well-formed XGBoost/LightGBM model; the message says why."""


@dataclass
class BoosterInfo:
    library: str  # "xgboost" | "lightgbm"
    encoding: str  # "json" | "ubjson" | "text"
    objective: str
    is_classifier: bool
    n_classes: int  # 2 for binary, K for multiclass, 0 for regressors
    n_features: int
    feature_names: list[str] | None
    n_trees: int
    has_probabilities: bool = True
    details: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[int] | None:
        return list(range(self.n_classes)) if self.is_classifier else None

    def as_dict(self) -> dict:
        return {"library": self.library, "encoding": self.encoding, "objective": self.objective,
                "is_classifier": self.is_classifier, "n_classes": self.n_classes, "n_features": self.n_features,
                "feature_names": self.feature_names, "n_trees": self.n_trees,
                "has_probabilities": self.has_probabilities, **self.details}


def xgboost_encoding(head: bytes) -> str | None:
    """'json' | 'ubjson' when ``head`` starts like an XGBoost model file, else None."""
    stripped = head.lstrip(b" \t\r\n")
    if stripped.startswith(b"{") and stripped[1:].lstrip(b" \t\r\n").startswith(b'"learner"'):
        return "json"
    if len(head) > 3 and head[0:1] == b"{" and head[1:2] in b"iUIlL" and b"learner" in head[:24]:
        return "ubjson"
    return None


def is_lightgbm_text(head: bytes) -> bool:
    return head.startswith((b"tree\nversion=v", b"tree\r\nversion=v"))


# --- UBJSON -----------------------------------------------------------------------------------

_INT_TYPES = {b"i": ("b", 1), b"U": ("B", 1), b"I": (">h", 2), b"l": (">i", 4), b"L": (">q", 8)}
_FLOAT_TYPES = {b"d": (">f", 4), b"D": (">d", 8)}
_SIZES = {**{k: v[1] for k, v in _INT_TYPES.items()}, **{k: v[1] for k, v in _FLOAT_TYPES.items()},
          b"C": 1, b"T": 0, b"F": 0, b"Z": 0}


class TypedArray:
    """A typed UBJSON array of numbers, kept as its length (the sandboxed library reads the values)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


class _Reader:
    def __init__(self, fh, total: int):
        self.fh = fh
        self.total = total

    def left(self) -> int:
        return self.total - self.fh.tell()

    def read(self, n: int) -> bytes:
        if n > self.left():
            raise BoosterRejected(f"The UBJSON model declares {n:,} bytes where only {self.left():,} are left in "
                                  "the file: refused (truncated file or a forged size)")
        data = self.fh.read(n)
        if len(data) != n:
            raise BoosterRejected("The UBJSON model ends early (truncated file)")
        return data

    def skip(self, n: int) -> None:
        if n > self.left():
            raise BoosterRejected(f"The UBJSON model declares {n:,} bytes of data where only {self.left():,} "
                                  "are left in the file: refused (truncated file or a forged size)")
        self.fh.seek(n, os.SEEK_CUR)

    def marker(self) -> bytes:
        m = self.read(1)
        while m == b"N":  # no-op
            m = self.read(1)
        return m

    def int_of(self, marker: bytes) -> int:
        if marker not in _INT_TYPES:
            raise BoosterRejected(f"The UBJSON model has a length of type {marker!r}, not an integer")
        fmt, size = _INT_TYPES[marker]
        return struct.unpack(fmt, self.read(size))[0]

    def length(self) -> int:
        n = self.int_of(self.marker())
        if n < 0:
            raise BoosterRejected("The UBJSON model declares a negative length")
        return n


def _ubj_value(r: _Reader, marker: bytes, depth: int):
    if depth > MAX_DEPTH:
        raise BoosterRejected("The UBJSON model nests too deeply")
    if marker in _INT_TYPES:
        return r.int_of(marker)
    if marker in _FLOAT_TYPES:
        fmt, size = _FLOAT_TYPES[marker]
        return struct.unpack(fmt, r.read(size))[0]
    if marker == b"T":
        return True
    if marker == b"F":
        return False
    if marker == b"Z":
        return None
    if marker == b"C":
        return r.read(1).decode("latin-1")
    if marker in (b"S", b"H"):
        n = r.length()
        if n > 4096:
            r.skip(n)
            return ""
        try:
            return r.read(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BoosterRejected("The UBJSON model has a string that is not UTF-8") from exc
    if marker == b"[":
        return _ubj_array(r, depth)
    if marker == b"{":
        return _ubj_object(r, depth)
    raise BoosterRejected(f"The file is not a UBJSON model (unknown marker {marker!r} at byte {r.fh.tell() - 1})")


def _container_header(r: _Reader) -> tuple[bytes | None, int | None, bytes | None]:
    """Optimised container header: ($type)?(#count)? → (type, count, first marker if no header)."""
    m = r.marker()
    typ = count = None
    if m == b"$":
        typ = r.read(1)
        m = r.marker()
        if m != b"#":
            raise BoosterRejected("The UBJSON model has a typed container without a count")
    if m == b"#":
        count = r.length()
        return typ, count, None
    return None, None, m


def _ubj_array(r: _Reader, depth: int):
    typ, count, first = _container_header(r)
    if count is not None:
        if typ is not None and typ in _SIZES:
            r.skip(count * _SIZES[typ])
            return TypedArray(count)
        if count > r.left():
            raise BoosterRejected(f"The UBJSON model declares an array of {count:,} items in {r.left():,} bytes")
        return [_ubj_value(r, typ or r.marker(), depth + 1) for _ in range(count)]
    out, m = [], first
    while m != b"]":
        out.append(_ubj_value(r, m, depth + 1))
        m = r.marker()
    return out


def _ubj_key(r: _Reader, marker: bytes) -> str:
    n = r.int_of(marker)
    if n < 0 or n > 4096:
        raise BoosterRejected("The UBJSON model has an object key longer than 4096 bytes")
    try:
        return r.read(n).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BoosterRejected("The UBJSON model has an object key that is not UTF-8") from exc


def _ubj_object(r: _Reader, depth: int) -> dict:
    typ, count, first = _container_header(r)
    out = {}
    if count is not None:
        if count > r.left():
            raise BoosterRejected(f"The UBJSON model declares an object of {count:,} items in {r.left():,} bytes")
        for _ in range(count):
            key = _ubj_key(r, r.marker())
            out[key] = _ubj_value(r, typ or r.marker(), depth + 1)
        return out
    m = first
    while m != b"}":
        key = _ubj_key(r, m)
        out[key] = _ubj_value(r, r.marker(), depth + 1)
        m = r.marker()
    return out


def read_ubjson(path) -> dict:
    """The structure of a UBJSON file with typed numeric arrays as ``TypedArray`` lengths."""
    total = os.path.getsize(path)
    with open(path, "rb") as fh:
        r = _Reader(fh, total)
        if r.marker() != b"{":
            raise BoosterRejected("The UBJSON model does not start with an object")
        value = _ubj_object(r, 0)
        if fh.read(1):
            raise BoosterRejected("Trailing data after the UBJSON model: refused")
    return value


# --- XGBoost ----------------------------------------------------------------------------------


def _int_param(params: dict, key: str, default: int | None = None) -> int:
    raw = params.get(key, default)
    try:
        return int(float(str(raw).strip("[]")))
    except (TypeError, ValueError) as exc:
        raise BoosterRejected(f"The XGBoost model has an unreadable {key} ({str(raw)[:40]!r})") from exc


def inspect_xgboost(doc: dict, *, encoding: str) -> BoosterInfo:
    """Check the structure of a parsed XGBoost model document; refuse what cannot be served."""
    learner = doc.get("learner") if isinstance(doc, dict) else None
    if not isinstance(learner, dict):
        raise BoosterRejected("Not an XGBoost model: no 'learner' object")
    params = learner.get("learner_model_param")
    objective = (learner.get("objective") or {}).get("name") if isinstance(learner.get("objective"), dict) else None
    booster = learner.get("gradient_booster")
    if not isinstance(params, dict) or not isinstance(objective, str) or not isinstance(booster, dict):
        raise BoosterRejected("Not an XGBoost model: the learner lacks its parameters, objective or booster")
    n_features = _int_param(params, "num_feature")
    n_class = _int_param(params, "num_class", 0)
    n_target = _int_param(params, "num_target", 1)
    if not 0 < n_features <= MAX_FEATURES:
        raise BoosterRejected(f"The XGBoost model declares {n_features:,} features (limit {MAX_FEATURES:,})")
    if not 0 <= n_class <= MAX_CLASSES:
        raise BoosterRejected(f"The XGBoost model declares {n_class:,} classes (limit {MAX_CLASSES:,})")
    if n_target != 1:
        raise BoosterRejected(f"Multi-output XGBoost models ({n_target} targets) are not served")
    if objective in XGB_CLASSIFIER_OBJECTIVES:
        is_classifier = True
        n_classes = 2 if objective.startswith("binary") else n_class
        if objective.startswith("multi") and n_classes < 2:
            raise BoosterRejected(f"The XGBoost model's objective is {objective} but it declares {n_class} classes")
    elif objective in XGB_REGRESSOR_OBJECTIVES:
        is_classifier, n_classes = False, 0
    else:
        raise BoosterRejected(
            f"The XGBoost objective {objective!r} is not served (classifiers: "
            f"{', '.join(sorted(XGB_CLASSIFIER_OBJECTIVES))}; regressors: {', '.join(sorted(XGB_REGRESSOR_OBJECTIVES))})")
    name = booster.get("name")
    n_trees = 0
    if name in ("gbtree", "dart"):
        model = booster.get("model") if name == "gbtree" else (booster.get("gbtree") or {}).get("model")
        if not isinstance(model, dict) or not isinstance(model.get("trees"), list):
            raise BoosterRejected("The XGBoost model has no tree list")
        trees = model["trees"]
        declared = _int_param(model.get("gbtree_model_param") or {}, "num_trees", len(trees))
        if declared != len(trees) or len(trees) > MAX_TREES:
            raise BoosterRejected(f"The XGBoost model declares {declared:,} trees but holds {len(trees):,} "
                                  f"(limit {MAX_TREES:,})")
        for i, tree in enumerate(trees):
            _check_xgb_tree(i, tree)
        n_trees = len(trees)
    elif name != "gblinear":
        raise BoosterRejected(f"Unknown XGBoost booster {name!r}")
    names = learner.get("feature_names")
    names = [str(n) for n in names] if isinstance(names, list) and names else None
    if names is not None and len(names) != n_features:
        raise BoosterRejected(f"The XGBoost model names {len(names)} features but declares {n_features}")
    sk = (learner.get("attributes") or {}).get("scikit_learn") if isinstance(learner.get("attributes"), dict) else None
    return BoosterInfo(library="xgboost", encoding=encoding, objective=objective, is_classifier=is_classifier,
                       n_classes=n_classes, n_features=n_features, feature_names=names, n_trees=n_trees,
                       has_probabilities=objective != "multi:softmax",
                       details={"booster": name, "sklearn_wrapper": bool(sk)})


_TREE_ARRAYS = ("left_children", "right_children", "split_indices", "split_conditions", "base_weights")


def _check_xgb_tree(i: int, tree) -> None:
    if not isinstance(tree, dict):
        raise BoosterRejected(f"XGBoost tree {i} is not an object")
    nodes = _int_param(tree.get("tree_param") or {}, "num_nodes", -1)
    if not 0 < nodes <= MAX_NODES:
        raise BoosterRejected(f"XGBoost tree {i} declares {nodes:,} nodes (limit {MAX_NODES:,})")
    for key in _TREE_ARRAYS:
        arr = tree.get(key)
        if arr is None or not hasattr(arr, "__len__") or len(arr) != nodes:
            raise BoosterRejected(f"XGBoost tree {i}: {key} has {len(arr) if hasattr(arr, '__len__') else 'no'} "
                                  f"entries for {nodes:,} declared nodes")


def read_xgboost(path) -> BoosterInfo:
    """Read and check an XGBoost JSON/UBJSON model file (JSON is parsed whole: call where memory is capped)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    encoding = xgboost_encoding(head)
    if encoding is None:
        raise BoosterRejected("Not an XGBoost JSON or UBJSON model")
    if encoding == "ubjson":
        doc = read_ubjson(path)
    else:
        try:
            with open(path, "rb") as fh:
                doc = json.load(fh)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BoosterRejected(f"The XGBoost JSON model is not valid JSON ({str(exc)[:200]}): truncated or "
                                  "not a model file") from exc
    return inspect_xgboost(doc, encoding=encoding)


# --- LightGBM ---------------------------------------------------------------------------------

_LGB_LEAF_ARRAYS = ("leaf_value",)
_LGB_SPLIT_ARRAYS = ("split_feature", "threshold", "decision_type", "left_child", "right_child")


def _lgb_int(key: str, value: str, *, low: int, high: int, where: str = "") -> int:
    try:
        n = int(value.strip())
    except ValueError as exc:
        raise BoosterRejected(f"The LightGBM model has an unreadable {key}{where} ({value[:40]!r})") from exc
    if not low <= n <= high:
        raise BoosterRejected(f"The LightGBM model declares {key}={n:,}{where} (allowed {low:,} to {high:,})")
    return n


def read_lightgbm(path) -> BoosterInfo:
    """Streaming check of a LightGBM text model: UTF-8 text, header, tree blocks, end marker."""
    total = os.path.getsize(path)
    header: dict[str, str] = {}
    trees = 0
    tree: dict[str, int] | None = None
    ended = False
    pandas_categorical = None
    n_features = None
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            raw = fh.readline(MAX_LINE + 1)
            if not raw:
                break
            lineno += 1
            if len(raw) > MAX_LINE:
                raise BoosterRejected(f"The LightGBM model has a line longer than {MAX_LINE:,} bytes (line {lineno})")
            if b"\x00" in raw:
                raise BoosterRejected(f"The LightGBM model contains binary data (a NUL byte on line {lineno}): a "
                                      "text model was expected, refused")
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise BoosterRejected(f"The LightGBM model contains binary data (line {lineno} is not UTF-8 "
                                      "text): refused") from exc
            if ended:
                if line.startswith("pandas_categorical:"):
                    pandas_categorical = line.partition(":")[2].strip()
                continue
            if line == "end of trees":
                if tree is not None:
                    _check_lgb_tree(trees - 1, tree, n_features)
                ended = True
                continue
            key, sep, value = line.partition("=")
            if key == "Tree":
                if n_features is None:
                    n_features = _check_lgb_header(header, total)
                if tree is not None:
                    _check_lgb_tree(trees - 1, tree, n_features)
                trees += 1
                if trees > MAX_TREES:
                    raise BoosterRejected(f"The LightGBM model has more than {MAX_TREES:,} trees")
                tree = {}
            elif tree is not None and sep:
                if key == "num_leaves":
                    tree["num_leaves"] = _lgb_int(key, value, low=1, high=MAX_LEAVES, where=f" in tree {trees - 1}")
                elif key in _LGB_SPLIT_ARRAYS or key in _LGB_LEAF_ARRAYS:
                    tree[key] = len(value.split()) if value.strip() else 0
                    if key == "split_feature" and value.strip():
                        top = max(int(v) for v in value.split() if v.lstrip("-").isdigit()) if value.split() else 0
                        tree["max_split_feature"] = top
            elif tree is None and sep and lineno < 10_000:
                header[key] = value
    if n_features is None:
        n_features = _check_lgb_header(header, total)
    if not ended:
        raise BoosterRejected("The LightGBM model is truncated (no 'end of trees' line)")
    if pandas_categorical not in (None, "", "null", "[]"):
        raise BoosterRejected("The LightGBM model was trained on pandas categorical columns, which the portal "
                              "does not serve natively: encode them in a scikit-learn Pipeline (skops)")
    declared_sizes = header.get("tree_sizes", "").split()
    if declared_sizes and len(declared_sizes) != trees:
        raise BoosterRejected(f"The LightGBM model declares {len(declared_sizes)} tree sizes but holds {trees} trees")
    objective = header.get("objective", "").split()[0] if header.get("objective", "").split() else ""
    n_class = int(header["num_class"])
    if objective in LGB_CLASSIFIER_OBJECTIVES:
        is_classifier, n_classes = True, (2 if objective == "binary" else n_class)
        if objective == "multiclass" and n_class < 2:
            raise BoosterRejected("The LightGBM multiclass model declares fewer than 2 classes")
    elif objective in LGB_REGRESSOR_OBJECTIVES:
        is_classifier, n_classes = False, 0
    else:
        raise BoosterRejected(
            f"The LightGBM objective {objective!r} is not served (classifiers: "
            f"{', '.join(sorted(LGB_CLASSIFIER_OBJECTIVES))}; regressors: {', '.join(sorted(LGB_REGRESSOR_OBJECTIVES))})")
    names = header.get("feature_names", "").split() or None
    default = [f"Column_{i}" for i in range(n_features)]
    return BoosterInfo(library="lightgbm", encoding="text", objective=objective, is_classifier=is_classifier,
                       n_classes=n_classes, n_features=n_features,
                       feature_names=None if names == default else names, n_trees=trees,
                       details={"lightgbm_version": header.get("version", "")})


def _check_lgb_header(header: dict, total: int) -> int:
    for key in ("version", "num_class", "num_tree_per_iteration", "max_feature_idx", "objective"):
        if key not in header:
            raise BoosterRejected(f"The LightGBM model header lacks {key}= (truncated or not a model file)")
    _lgb_int("num_class", header["num_class"], low=1, high=MAX_CLASSES)
    _lgb_int("num_tree_per_iteration", header["num_tree_per_iteration"], low=1, high=MAX_CLASSES)
    n_features = _lgb_int("max_feature_idx", header["max_feature_idx"], low=0, high=MAX_FEATURES - 1) + 1
    names = header.get("feature_names", "").split()
    if names and len(names) != n_features:
        raise BoosterRejected(f"The LightGBM model names {len(names)} features but declares {n_features}")
    sizes = header.get("tree_sizes", "").split()
    if sizes:
        declared = sum(_lgb_int("tree_sizes", s, low=0, high=total) for s in sizes)
        if declared > total:
            raise BoosterRejected(f"The LightGBM model declares {declared:,} bytes of trees in a file of "
                                  f"{total:,} bytes: refused (truncated file or a forged size)")
    return n_features


def _check_lgb_tree(i: int, tree: dict, n_features: int) -> None:
    leaves = tree.get("num_leaves")
    if leaves is None:
        raise BoosterRejected(f"LightGBM tree {i} has no num_leaves")
    if tree.get("leaf_value") != leaves:
        raise BoosterRejected(f"LightGBM tree {i}: leaf_value has {tree.get('leaf_value')} entries for {leaves} leaves")
    if leaves > 1:
        for key in _LGB_SPLIT_ARRAYS:
            if tree.get(key) != leaves - 1:
                raise BoosterRejected(f"LightGBM tree {i}: {key} has {tree.get(key)} entries for {leaves} leaves")
        if tree.get("max_split_feature", 0) >= n_features:
            raise BoosterRejected(f"LightGBM tree {i} splits on feature {tree['max_split_feature']}, beyond the "
                                  f"{n_features} declared features")

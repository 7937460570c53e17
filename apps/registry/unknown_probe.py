"""What a model does with a category it has never seen (pure: pandas and the contract, no Django).

Serving's unknown-category policy (``"unknown": "refuse" | "pass"``) decides whether such a value reaches the
model; what the model then does is its own: a ``OneHotEncoder(handle_unknown="ignore")`` answers, one with
``handle_unknown="error"`` (or an ``OrdinalEncoder`` without ``unknown_value``) raises. Validation feeds each
categorical feature an unseen value on a few real rows, in the scikit-learn form and in the ONNX form:

- a feature whose model raises cannot be declared ``"unknown": "pass"`` (refused naming it, at validation and
  when the contract is edited later): "pass" promises the model gets the value;
- for a feature whose model answers, the ONNX form is served only when it answers the same (skl2onnx's
  ``OrdinalEncoder`` answers where scikit-learn raises, for example), else the scikit-learn form is;
- a text feature without a list of categories lets every value through, so its model must take unseen values
  in both forms alike (else the scikit-learn form is served).
"""

from __future__ import annotations

from collections.abc import Callable

from .contract import canonical_type

UNSEEN = "__slipway_unseen__"
PROBE_ROWS = 8


def probed_features(contract: list[dict]) -> list[dict]:
    """Features an unseen category can be sent to: text features, and int features declared categorical
    with their categories."""
    out = []
    for c in contract:
        typ = canonical_type(c.get("type"))
        if typ == "string" or (typ == "int" and c.get("categorical") and c.get("categories")):
            out.append(c)
    return out


def unseen_value(feature: dict):
    cats = feature.get("categories") or []
    if canonical_type(feature.get("type")) == "int":
        return max(int(v) for v in cats) + 1
    value, i = UNSEEN, 0
    while value in cats:
        i += 1
        value = f"{UNSEEN}{i}"
    return value


def probe_frames(df, contract: list[dict], rows: int = PROBE_ROWS) -> dict:
    """{feature name: a copy of the first ``rows`` rows of the typed frame ``df`` with that feature unseen}."""
    base = df.head(rows)
    out = {}
    for feature in probed_features(contract):
        frame = base.copy()
        frame[feature["name"]] = [unseen_value(feature)] * len(frame)
        out[feature["name"]] = frame
    return out


def run_probes(predict: Callable, frames: dict, to_input: Callable) -> tuple[dict, dict]:
    """(refused {feature: the model's error}, answered {feature: (model input, the model's answer)})."""
    refused, answered = {}, {}
    for name, frame in frames.items():
        X = to_input(frame)
        try:
            answered[name] = (X, predict(X))
        except Exception as exc:  # noqa: BLE001 - any refusal counts: the model cannot take the value
            refused[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return refused, answered


def pass_conflicts(contract: list[dict], refused: dict) -> list[str]:
    """Sentences naming each feature declared ``"unknown": "pass"`` whose model refuses unseen values."""
    return [f"{c['name']!r} lets unknown categories through (\"unknown\": \"pass\") but the model refuses them "
            f"({refused[c['name']]}): declare \"unknown\": \"refuse\", or fit its encoder to accept them "
            "(OneHotEncoder(handle_unknown=\"ignore\"))"
            for c in contract if c.get("unknown") == "pass" and c["name"] in refused]

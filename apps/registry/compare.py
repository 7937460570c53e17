"""Side-by-side comparison of two versions: plotly figure dicts and diffs (pure: plain dicts in)."""

from __future__ import annotations

import numpy as np

COLORS = ("#6c8ebf", "#d79b00")


def metrics_figure(a_label: str, a_metrics: dict, b_label: str, b_metrics: dict) -> dict | None:
    keys = [k for k in sorted(set(a_metrics) | set(b_metrics)) if k != "n"]
    if not keys:
        return None
    data = [
        {"type": "bar", "name": label, "x": keys, "y": [metrics.get(k) for k in keys], "marker": {"color": color}}
        for label, metrics, color in ((a_label, a_metrics, COLORS[0]), (b_label, b_metrics, COLORS[1]))
    ]
    return {"data": data, "layout": {"barmode": "group", "title": {"text": "Holdout metrics"},
                                     "height": 320, "margin": {"t": 40, "b": 40, "l": 50, "r": 10}}}


def param_diff(a_params: dict, b_params: dict) -> list[dict]:
    rows = []
    for key in sorted(set(a_params) | set(b_params)):
        av, bv = a_params.get(key, "—"), b_params.get(key, "—")
        if av != bv:
            rows.append({"name": key, "a": av, "b": bv})
    return rows


def _ks_from_quantiles(qa: list, qb: list) -> float | None:
    """Approximate KS distance between two numeric profiles from their quantile functions."""
    if not qa or not qb:
        return None
    qa, qb = np.asarray(qa), np.asarray(qb)
    grid = np.unique(np.concatenate([qa, qb]))
    probs = np.linspace(0, 1, len(qa))
    fa = np.interp(grid, qa, probs, left=0, right=1)
    fb = np.interp(grid, qb, np.linspace(0, 1, len(qb)), left=0, right=1)
    return float(np.max(np.abs(fa - fb)))


def profile_differences(a_profile: dict, b_profile: dict) -> list[dict]:
    """Per feature: mean/std/missing of each, and an approximate KS distance for numeric features."""
    rows = []
    fa, fb = (a_profile or {}).get("features", {}), (b_profile or {}).get("features", {})
    for name in list(dict.fromkeys([*fa, *fb])):
        pa, pb = fa.get(name), fb.get(name)
        row = {"name": name, "kind": (pa or pb or {}).get("kind"), "a": pa, "b": pb, "ks": None}
        if pa and pb and pa.get("kind") == "numeric" and pb.get("kind") == "numeric":
            row["ks"] = _ks_from_quantiles(pa.get("quantiles"), pb.get("quantiles"))
        rows.append(row)
    return rows


def profile_figure(a_label: str, a_profile: dict, b_label: str, b_profile: dict, feature: str) -> dict | None:
    pa = (a_profile or {}).get("features", {}).get(feature)
    pb = (b_profile or {}).get("features", {}).get(feature)
    if not pa or not pb:
        return None
    data = []
    if pa["kind"] == "numeric" and pa.get("quantiles") and pb.get("quantiles"):
        probs = list(np.linspace(0, 1, len(pa["quantiles"]))[::10])
        for label, prof, color in ((a_label, pa, COLORS[0]), (b_label, pb, COLORS[1])):
            data.append({"type": "scatter", "mode": "lines", "name": label, "x": prof["quantiles"][::10],
                         "y": probs[: len(prof["quantiles"][::10])], "line": {"color": color}})
        layout_x = {"title": {"text": feature}}
        ytitle = "cumulative share"
    else:
        cats = sorted(set(pa.get("frequencies", {})) | set(pb.get("frequencies", {})))
        for label, prof, color in ((a_label, pa, COLORS[0]), (b_label, pb, COLORS[1])):
            total = max(prof.get("n", 0), 1)
            data.append({"type": "bar", "name": label, "x": cats,
                         "y": [prof.get("frequencies", {}).get(c, 0) / total for c in cats], "marker": {"color": color}})
        layout_x = {"title": {"text": feature}}
        ytitle = "share"
    return {"data": data, "layout": {"title": {"text": f"Reference distribution of {feature}"}, "height": 280,
                                     "xaxis": layout_x, "yaxis": {"title": {"text": ytitle}},
                                     "margin": {"t": 40, "b": 40, "l": 50, "r": 10}}}

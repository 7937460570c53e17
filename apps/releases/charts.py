"""Plotly figures (plain dicts) of a shadow comparison and of promotion evidence (pure: no Django)."""

from __future__ import annotations

_LEGEND = {"orientation": "h", "y": -0.25}


def confusion_figure(agreement: dict | None) -> dict | None:
    if not agreement or not agreement.get("n"):
        return None
    classes = [str(c) for c in agreement["classes"]]
    z = agreement["confusion"]
    return {
        "data": [{"type": "heatmap", "z": z, "x": [f"candidate {c}" for c in classes],
                  "y": [f"production {c}" for c in classes], "colorscale": "Blues", "showscale": False,
                  "text": [[str(v) for v in row] for row in z], "texttemplate": "%{text}"}],
        "layout": {"height": 260, "title": {"text": f"Agreement {agreement['rate']:.1%} (n = {agreement['n']:,})",
                                             "font": {"size": 14}},
                   "yaxis": {"autorange": "reversed"}, "margin": {"l": 110}},
    }


def difference_figure(difference: dict | None, what: str) -> dict | None:
    if not difference or not difference.get("n") or not difference.get("edges"):
        return None
    edges = difference["edges"]
    mids = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return {
        "data": [{"type": "bar", "x": mids, "y": difference["counts"], "marker": {"color": "#3b6ea5"},
                  "name": "requests"}],
        "layout": {"height": 260, "bargap": 0.02,
                   "title": {"text": f"Difference in {what}", "font": {"size": 14}},
                   "xaxis": {"title": {"text": f"candidate − production (mean {difference['mean']:+.3f})"}}, "yaxis": {"title": {"text": "requests"}}},
    }


def accuracy_figure(mcnemar: dict | None, bootstrap: dict | None) -> dict | None:
    """Per-model metrics on requests with known outcomes, with the bootstrap CI of the difference."""
    data = []
    if mcnemar and mcnemar.get("n"):
        data.append({"type": "bar", "name": "accuracy", "x": ["production", "candidate"],
                     "y": [mcnemar["production_accuracy"], mcnemar["candidate_accuracy"]], "marker": {"color": "#3b6ea5"}})
    if bootstrap and bootstrap.get("n") and bootstrap.get("metric") == "auc":
        data.append({"type": "bar", "name": "ROC AUC", "x": ["production", "candidate"],
                     "y": [bootstrap["production"], bootstrap["candidate"]], "marker": {"color": "#7a9a3b"}})
    if bootstrap and bootstrap.get("n") and bootstrap.get("metric") == "rmse":
        data.append({"type": "bar", "name": "RMSE", "x": ["production", "candidate"],
                     "y": [bootstrap["production"], bootstrap["candidate"]], "marker": {"color": "#a5573b"}})
    if not data:
        return None
    n = (mcnemar or bootstrap or {}).get("n", 0)
    return {"data": data, "layout": {"height": 260, "barmode": "group", "legend": _LEGEND,
                                     "title": {"text": f"With known outcomes (n = {n:,})", "font": {"size": 14}}}}


def offline_figure(offline: list[dict]) -> dict | None:
    rows = [r for r in offline or [] if r.get("metric") != "n"]
    if not rows:
        return None
    names = [r["metric"] for r in rows]
    return {
        "data": [{"type": "bar", "name": "production", "x": names, "y": [r["production"] for r in rows],
                  "marker": {"color": "#8a94a6"}},
                 {"type": "bar", "name": "candidate", "x": names, "y": [r["candidate"] for r in rows],
                  "marker": {"color": "#3b6ea5"}}],
        "layout": {"height": 280, "barmode": "group", "legend": _LEGEND,
                   "title": {"text": "Offline metrics (holdout)", "font": {"size": 14}}},
    }


def comparison_figures(comparison: dict | None, task: str) -> dict:
    c = comparison or {}
    what = "prediction" if task == "regression" else "score"
    figs = {"confusion": confusion_figure(c.get("agreement")),
            "difference": difference_figure(c.get("difference"), what),
            "accuracy": accuracy_figure(c.get("mcnemar"), c.get("bootstrap"))}
    return {k: v for k, v in figs.items() if v is not None}

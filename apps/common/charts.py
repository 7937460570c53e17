"""Text summaries of Plotly figure dicts: what a chart shows, in a sentence or two, for screen readers and
pages read without JavaScript. Pure: no Django."""

from __future__ import annotations

import math
from numbers import Real


def _num(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt(value) -> str:
    v = _num(value)
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _trace_summary(trace: dict) -> str | None:
    name = trace.get("name") or trace.get("type", "series")
    if trace.get("type") == "heatmap":
        return _heatmap_summary(trace)
    ys = trace.get("y") or []
    xs = trace.get("x") or list(range(len(ys)))
    points = [(x, _num(y)) for x, y in zip(xs, ys, strict=False) if _num(y) is not None]
    if not points:
        return f"{name}: no values"
    values = [y for _x, y in points]
    hi = max(points, key=lambda p: p[1])
    lo = min(points, key=lambda p: p[1])
    last_x, last_y = points[-1]
    if len(points) == 1:
        return f"{name}: {fmt(last_y)} at {last_x}"
    return (f"{name}: latest {fmt(last_y)} ({last_x}); lowest {fmt(lo[1])} ({lo[0]}), highest {fmt(hi[1])} "
            f"({hi[0]}) over {len(values)} points")


def _heatmap_summary(trace: dict) -> str:
    z = trace.get("z") or []
    xs, ys = trace.get("x") or [], trace.get("y") or []
    cells = [(_num(v), ys[i] if i < len(ys) else i, xs[j] if j < len(xs) else j)
             for i, row in enumerate(z) for j, v in enumerate(row or [])]
    cells = [c for c in cells if c[0] is not None]
    if not cells:
        return "no values"
    top = max(cells, key=lambda c: c[0])
    flagged = sum(1 for row in (trace.get("text") or []) for t in (row or []) if t)
    text = f"{len(ys)} rows × {len(xs)} columns; highest {fmt(top[0])} ({top[1]} at {top[2]})"
    if flagged:
        text += f"; {flagged} cell{'s' if flagged != 1 else ''} flagged"
    return text


def figure_summary(figure: dict | None) -> str:
    """One line per trace (latest, lowest, highest), or the figure's own ``summary`` when it has one."""
    if not figure:
        return "No data."
    if figure.get("summary"):
        return str(figure["summary"])
    parts = [s for s in (_trace_summary(t) for t in figure.get("data") or []) if s]
    return "; ".join(parts) + "." if parts else "No data."

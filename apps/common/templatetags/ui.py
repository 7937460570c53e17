"""``{{ value|pct }}``: the class ``pct-N`` that sets a bar's width to N % (N rounded into 0..100).

The Content-Security-Policy allows no ``style=""`` attribute, so bar widths come from classes
(``static/css/slipway.css`` defines ``.pct-0`` … ``.pct-100``)."""

from django import template

register = template.Library()


@register.filter
def pct(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if number != number:  # NaN
        number = 0.0
    return f"pct-{int(round(min(max(number, 0.0), 100.0)))}"

"""``{% chart figure "element-id" "Title" %}``: a Plotly chart with its text summary.

Renders a <figure> holding the figure's JSON (``json_script``), the element charts.js draws into and a
<figcaption> with the summary (the figure's accessible name), which is also what a page read without
JavaScript shows.
"""

from django import template
from django.utils.html import format_html, json_script

from apps.common.charts import figure_summary

register = template.Library()


@register.simple_tag
def chart(figure, element_id: str, title: str = "", css_class: str = "", height: int | None = None):
    summary = figure_summary(figure)
    # a fixed height as data (charts.js sets it through the CSSOM: the CSP allows no style="" attribute)
    style = format_html(' data-height="{}"', int(height)) if height else ""
    return format_html(
        '<figure class="chart">{}<div class="plotly-chart {}" data-figure="{}"{}></div>'
        '<figcaption class="chart-summary small muted">{}{}</figcaption></figure>',
        json_script(figure, element_id), css_class, element_id, style,
        format_html("<strong>{}:</strong> ", title) if title else "", summary)

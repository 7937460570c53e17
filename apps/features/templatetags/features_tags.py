from django import template

from apps.features.services import format_duration

register = template.Library()


@register.filter
def duration(value):
    """A timedelta as '1h', '2d 3h', '0' or '—' (none)."""
    return format_duration(value)

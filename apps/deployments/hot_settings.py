"""The settings the prediction path reads on every request, as plain attributes.

Each read of ``django.conf.settings.X`` runs ``LazyObject.__getattribute__`` in Python; the request path
reads a handful per request, so it reads them from one snapshot instead. The snapshot is rebuilt after
any setting changes (``setting_changed``: ``override_settings`` and pytest's ``settings`` fixture).
"""

from __future__ import annotations

from django.conf import settings
from django.core.signals import setting_changed


class HotSettings:
    __slots__ = ("state_ttl", "max_body_bytes", "access_log", "flush_s")

    def __init__(self):
        self.state_ttl = settings.SERVING_STATE_TTL
        self.max_body_bytes = settings.SERVING_MAX_BODY_BYTES
        self.access_log = settings.SERVING_ACCESS_LOG
        self.flush_s = settings.SERVING_OBSERVABILITY_FLUSH_S


_current: HotSettings | None = None


def hot() -> HotSettings:
    h = _current
    return h if h is not None else _rebuild()


def _rebuild() -> HotSettings:
    global _current
    _current = HotSettings()
    return _current


def _changed(**kwargs) -> None:
    global _current
    _current = None


setting_changed.connect(_changed, dispatch_uid="slipway-serving-hot-settings")

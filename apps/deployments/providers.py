"""Ports through which deployments reads facts owned by apps ABOVE it (monitoring), without importing them.

The layering rule says deployments never imports monitoring. Two facts of monitoring are needed here:

- the ground-truth outcome of a logged request (for the shadow comparison's paired tests), and
- whether a deployment has an open critical alert (a promotion gate).

Each is a plain callable named by a setting (``SHADOW_OUTCOME_SOURCE``, ``PROMOTION_ALERT_SOURCE``) and
resolved with ``import_string`` when first used, the way Django resolves ``EMAIL_BACKEND``. The defaults
point at two small adapters in ``workers/deployments_shadow.py`` (the glue layer, which may import any
app); tests may point them elsewhere with the ``settings`` fixture. The shadow comparison itself takes
``outcomes: dict[request_id, label]`` as an argument (``shadow.shadow_run_compare``), so any caller —
monitoring included — can pass outcomes in directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger("slipway.deployments")


def _resolve(setting: str):
    path = getattr(settings, setting, "") or ""
    if not path:
        return None
    try:
        return import_string(path)
    except ImportError:
        logger.warning("Provider %s=%r cannot be imported", setting, path)
        return None


def outcome_labels(*, deployment, request_ids: Iterable) -> dict[str, object]:
    """``{str(request_id): label}`` for the requests whose outcome is known ({} without a source)."""
    fn = _resolve("SHADOW_OUTCOME_SOURCE")
    if fn is None:
        return {}
    return {str(k): v for k, v in (fn(deployment=deployment, request_ids=list(request_ids)) or {}).items()}


def open_critical_alerts(*, deployment) -> list[str] | None:
    """Messages of the deployment's open critical alerts; None when no source is configured (unknown)."""
    fn = _resolve("PROMOTION_ALERT_SOURCE")
    if fn is None:
        return None
    return [str(m) for m in fn(deployment=deployment)]

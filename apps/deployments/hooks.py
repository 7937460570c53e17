"""Rules that apps above deployments contribute to its services, without deployments importing them.

Deployments sits below releases in the layers, yet two release rules decide deployment writes:

- a never-live deployment goes live only through an approved promotion request (or an audited owner
  override) — ``go_live_check``;
- a direct production-version switch is refused once the project promotes by request —
  ``version_switch_check``.

The releases app registers its checks here in ``AppConfig.ready()``; deployments' services call the
functions below. With no check registered (releases not installed) no rule applies.
"""

from __future__ import annotations

from collections.abc import Callable

_go_live_checks: list[Callable[..., str]] = []
_version_switch_checks: list[Callable[..., None]] = []


def register_go_live_check(fn: Callable[..., str]) -> None:
    """``fn(*, project, actor, override_reason) -> str``: the override reason to record, "" when no rule
    applies; raises a domain error to refuse."""
    if fn not in _go_live_checks:
        _go_live_checks.append(fn)


def register_version_switch_check(fn: Callable[..., None]) -> None:
    """``fn(*, project) -> None``: raises a domain error to refuse a direct version switch."""
    if fn not in _version_switch_checks:
        _version_switch_checks.append(fn)


def go_live_check(*, project, actor, override_reason: str = "") -> str:
    for fn in _go_live_checks:
        reason = fn(project=project, actor=actor, override_reason=override_reason)
        if reason:
            return reason
    return ""


def version_switch_check(*, project) -> None:
    for fn in _version_switch_checks:
        fn(project=project)

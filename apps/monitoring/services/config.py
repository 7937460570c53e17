"""Monitoring settings of a deployment, per-feature threshold overrides and the CBPE calibrator."""

from __future__ import annotations

from django.db import transaction

from apps.common.errors import InvalidInput
from apps.deployments.models import Deployment
from apps.projects.services import audit_record

from .. import drift, performance
from ..models import MonitorSettings, ThresholdOverride, WindowKind
from .common import MIN_WINDOW_MINUTES, OVERRIDE_KEYS, _require

# --- settings and overrides ------------------------------------------------------------------------


def monitor_settings_for(deployment: Deployment) -> MonitorSettings:
    obj, _ = MonitorSettings.objects.get_or_create(deployment=deployment)
    return obj


def monitor_settings_update(*, deployment: Deployment, actor, window_kind: str | None = None,
                            window_minutes: int | None = None, window_count: int | None = None,
                            schedule_enabled: bool | None = None, thresholds: dict | None = None) -> MonitorSettings:
    _require(actor, deployment, "monitoring.configure")
    ms = monitor_settings_for(deployment)
    if window_kind is not None:
        if window_kind not in WindowKind.values:
            raise InvalidInput(f"window_kind must be one of {', '.join(WindowKind.values)}", field="window_kind")
        ms.window_kind = window_kind
    if window_minutes is not None:
        if window_minutes < MIN_WINDOW_MINUTES:
            raise InvalidInput(f"Windows are at least {MIN_WINDOW_MINUTES} minutes", field="window_minutes")
        ms.window_minutes = window_minutes
    if window_count is not None:
        if window_count < 100:
            raise InvalidInput("Count windows hold at least 100 predictions", field="window_count")
        ms.window_count = window_count
    if schedule_enabled is not None:
        ms.schedule_enabled = schedule_enabled
    if thresholds is not None:
        unknown = set(thresholds) - set(drift.Thresholds.__dataclass_fields__)
        if unknown:
            raise InvalidInput(f"Unknown threshold(s): {', '.join(sorted(unknown))}", field="thresholds")
        ms.thresholds = {k: float(v) for k, v in thresholds.items()}
    ms.updated_by = actor
    ms.save()
    audit_record(actor=actor, verb="monitoring.settings_update", project=deployment.project, target=deployment,
                 details={"window_kind": ms.window_kind, "window_minutes": ms.window_minutes,
                          "window_count": ms.window_count, "thresholds": ms.thresholds})
    return ms


def threshold_override_set(*, deployment: Deployment, actor, feature: str, values: dict,
                           reason: str) -> ThresholdOverride:
    """Per-feature thresholds; a reason is required and recorded (and audited)."""
    _require(actor, deployment, "monitoring.configure")
    if not (reason or "").strip():
        raise InvalidInput("Say why this feature gets its own thresholds", field="reason")
    unknown = set(values) - set(OVERRIDE_KEYS)
    if unknown or not values:
        raise InvalidInput("Override alpha, wasserstein, js or psi", field="values")
    with transaction.atomic():
        obj, _ = ThresholdOverride.objects.update_or_create(
            deployment=deployment, feature=feature,
            defaults={"values": {k: float(v) for k, v in values.items()}, "reason": reason.strip()[:500],
                      "created_by": actor})
        audit_record(actor=actor, verb="monitoring.threshold_override", project=deployment.project,
                     target=deployment, details={"feature": feature, "values": obj.values, "reason": obj.reason})
    return obj


def calibration_fit(*, deployment: Deployment, actor, scores, labels, source: str,
                    method: str = "isotonic") -> MonitorSettings:
    """Fit the CBPE calibrator on reference data (the model's positive-class scores and true labels)."""
    _require(actor, deployment, "monitoring.configure")
    if len(scores) != len(labels) or len(scores) < 50:
        raise InvalidInput("Calibration needs at least 50 (score, label) pairs of equal length", field="scores")
    ms = monitor_settings_for(deployment)
    # for the current production version only: a new version is calibrated on its own reference rows
    ms.calibration = {**performance.calibrator_fit(scores, labels, method=method).to_dict(),
                      "version_id": deployment.production_version_id, "source": source[:200]}
    ms.calibration_source = source[:200]
    ms.save(update_fields=["calibration", "calibration_source", "updated_at"])
    return ms

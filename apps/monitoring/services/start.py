"""What monitoring prepares when a version goes live (a new deployment, an approved promotion, a rollback
or a version switch): the deployment's settings (count windows by default) and the CBPE calibration (or
the DLE loss model of a regressor) from the version's labelled holdout, so the first window already
carries a performance estimate and the pages say where the calibration comes from.

Deployments sits below monitoring: its services send ``workers.monitoring.monitoring_start`` by name
after commit; this is the body of that task.
"""

from __future__ import annotations

import logging

from apps.deployments.models import Deployment

from .. import drift
from ..models import WindowKind
from .config import monitor_settings_for
from .reference import binary_reference, reference_rows, regression_reference

log = logging.getLogger(__name__)


def _rows_source(version) -> str:
    info = (version.reference_profile or {}).get("rows") or {}
    return "labelled holdout" if info.get("source") == "holdout" else f"{info.get('source') or 'reference'} data"


def monitoring_start(*, deployment_id: int) -> dict:
    """Fit what monitoring learns from the deployment's production version and record its source on the
    deployment's settings (shown on the dashboard and the configuration page). Idempotent."""
    dep = Deployment.objects.select_related("registered_model", "production_version").filter(pk=deployment_id).first()
    if dep is None or dep.production_version is None:
        return {"calibration": None}
    ms = monitor_settings_for(dep)
    version = dep.production_version
    th = drift.Thresholds.from_dict(ms.thresholds)
    chunk = ms.window_count if ms.window_kind == WindowKind.COUNT else 1000
    label = f"v{version.version}"
    try:
        if dep.registered_model.task == "regression":
            model = regression_reference(version, chunk_size=chunk, k=th.threshold_sd)
            rows = reference_rows(version)
            source = (f"DLE fitted on {label}'s {_rows_source(version)} ({len(rows):,} rows) when it went live"
                      if model is not None and rows is not None else
                      f"none: {label} has no labelled holdout (upload one with the version to estimate MAE/RMSE)")
        elif len(version.classes or []) == 2:
            ref = binary_reference(version, manual=ms.calibration, chunk_size=chunk, k=th.threshold_sd)
            if ref is None:
                source = f"none: {label} has no labelled holdout with both classes (upload one with the version)"
            elif ref.source.startswith("reference rows"):
                source = f"{label}'s {_rows_source(version)} ({ref.n:,} rows), fitted when it went live"
            else:
                source = f"{label}: {ref.source}"
        else:
            source = f"not estimated: {label} is not a binary classifier (realized performance only)"
    except Exception:  # noqa: BLE001 - a broken reference must not stop the deployment; windows still compute
        log.exception("monitoring start failed for %s", dep.slug)
        source = f"none: {label}'s reference rows could not be read"
    ms.calibration_source = source[:200]
    ms.save(update_fields=["calibration_source", "updated_at"])
    return {"calibration": ms.calibration_source, "version_id": version.pk}

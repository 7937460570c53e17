"""Monitoring windows: drift, quality, prediction distribution, volume/latency and performance of a
stretch of the prediction log; the scheduled tick and the on-demand drift check."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.common.errors import InvalidInput
from apps.deployments.models import Deployment, DeploymentStatus, PredictionLog, PredictionMinuteStat
from apps.projects.services import job_create, job_progress

from .. import dle, drift, performance
from ..models import FeatureWindowStat, MonitoringWindow, MonitorSettings, ThresholdOverride, WindowKind
from .alerts import alert_rules_evaluate
from .common import (
    CHECK_MAX_MINUTES,
    MAX_WINDOWS_PER_TICK,
    MIN_WINDOW_MINUTES,
    _f,
    _positive_score,
    _require,
    log_watermark,
    rows_q,
)
from .config import monitor_settings_for
from .outcomes import outcomes_pending_match
from .realized import _banded_dict, _realized_fill
from .reference import binary_reference, label_text, pca_reference, regression_reference
from .skew import skew_check

log = logging.getLogger(__name__)

# --- windows ---------------------------------------------------------------------------------------


def _column_values(rows_inputs: list[dict], name: str, numeric: bool):
    if numeric:
        out = np.empty(len(rows_inputs), dtype=float)
        for i, r in enumerate(rows_inputs):
            v = r.get(name) if isinstance(r, dict) else None
            try:
                out[i] = float(v) if v is not None and not isinstance(v, (str, dict, list)) else np.nan
            except (TypeError, ValueError):
                out[i] = np.nan
        return out
    vals = []
    for r in rows_inputs:
        v = r.get(name) if isinstance(r, dict) else None
        if isinstance(v, bool):
            v = "True" if v else "False"
        elif isinstance(v, float) and v.is_integer():
            v = str(int(v))
        vals.append(None if v is None else str(v))
    return np.array(vals, dtype=object)


def _datetime_features(profile: dict, refs: dict) -> set[str]:
    """Features profiled on the time line (``datetime`` contract features: seconds since 1970 UTC)."""
    return {name for name, entry in (profile.get("features") or {}).items()
            if name in refs and entry.get("type") == "datetime"}


def _epoch_values(rows_inputs: list[dict], name: str) -> np.ndarray:
    """A datetime feature's logged ISO 8601 values as seconds since 1970 UTC, as its reference was profiled."""
    from apps.registry.contract import epoch_seconds

    return epoch_seconds([r.get(name) if isinstance(r, dict) else None for r in rows_inputs])


def _references(profile: dict) -> tuple[dict, object | None]:
    refs = {}
    for name, entry in (profile.get("features") or {}).items():
        if entry.get("kind") == "numeric" and not entry.get("quantiles"):
            continue
        try:
            refs[name] = drift.reference_from_profile(entry)
        except (KeyError, ValueError):
            continue
    pred = profile.get("prediction")
    pred_ref = None
    if pred and (pred.get("quantiles") or pred.get("frequencies")):
        pred_ref = drift.reference_from_profile(pred)
    return refs, pred_ref


def _feature_row(window: MonitoringWindow, res) -> FeatureWindowStat:
    if res.kind == "numeric":
        stats = {"ks_statistic": res.ks_statistic, "ks_pvalue": res.ks_pvalue, "psi": res.psi,
                 "wasserstein": res.wasserstein, "wasserstein_normalized": res.wasserstein_normalized,
                 "missing_rate": res.missing_rate, "out_of_range_rate": res.out_of_range_rate}
        hist = {"edges": list(res.histogram_edges), "reference": list(res.reference_histogram),
                "current": list(res.current_histogram)}
    else:
        stats = {"chi2_statistic": res.chi2_statistic, "chi2_pvalue": res.chi2_pvalue, "chi2_dof": res.chi2_dof,
                 "js_distance": res.js_distance, "missing_rate": res.missing_rate, "unseen_rate": res.unseen_rate,
                 "unseen_categories": list(res.unseen_categories)[:50]}
        hist = {"categories": list(res.categories)[:100], "reference": list(res.reference_frequencies)[:100],
                "current": list(res.current_frequencies)[:100]}
    stats["p_adjusted"] = res.p_adjusted
    stats = {k: (_f(v) if isinstance(v, float) else v) for k, v in stats.items()}
    stats["flags"] = list(res.flags)
    return FeatureWindowStat(window=window, feature=res.feature, kind=res.kind, score=_f(res.score) or 0.0,
                             drifted=res.drifted, stats=stats, histogram=hist)


def _decisions(rows, positive) -> np.ndarray:
    """The model's own decisions (its logged output is the positive class), whatever its decision rule."""
    target = label_text(positive)
    return np.array([r[2] is not None and label_text(r[2]) == target for r in rows], dtype=bool)


def _estimate(window: MonitoringWindow, ms: MonitorSettings, version, rows, scores, th: drift.Thresholds,
              current: dict, chunk_size: int) -> None:
    task = window.deployment.registered_model.task
    if task == "regression":
        ref = regression_reference(version, chunk_size=chunk_size, k=th.threshold_sd)
        preds = np.array([r[2] if isinstance(r[2], (int, float)) and not isinstance(r[2], bool) else np.nan
                          for r in rows], dtype=float)
        ok = ~np.isnan(preds)
        if ref is not None and ok.any():
            import pandas as pd

            frame = pd.DataFrame({f: np.asarray(current[f])[ok] if f in current else
                                  _column_values([r[1] for r in rows], f, True)[ok] for f in ref.features})
            window.estimated = _banded_dict(dle.dle_estimate(ref, frame, preds[ok], band_sd=th.band_sd))
        return
    classes = version.classes or []
    if len(classes) != 2 or scores is None:
        return
    ref = binary_reference(version, manual=ms.calibration, chunk_size=chunk_size, k=th.threshold_sd)
    if ref is None:
        return
    ok = ~np.isnan(scores)
    decisions = _decisions(rows, classes[-1])[ok]
    window.estimated = _banded_dict(performance.cbpe(scores[ok], decisions, ref.calibrator, band_sd=th.band_sd,
                                                     thresholds=ref.thresholds,
                                                     reference_components=ref.components))
    window.note = f"CBPE calibrated on {ref.source}"[:300]


def window_compute(*, deployment: Deployment, start: datetime, end: datetime,
                   trigger: str = MonitoringWindow.Trigger.SCHEDULE, first_request_id=None, last_request_id=None,
                   partial: bool = False, evaluate: bool = True) -> MonitoringWindow | None:
    """Drift, quality, prediction distribution, volume/latency, skew and performance of one window; stored
    as a ``MonitoringWindow`` with one ``FeatureWindowStat`` per feature, then alert rules run.

    The window's rows: with request ids, the predictions between (start, first_request_id) and (end,
    last_request_id) in (request time, request id) order, both inclusive (count windows); otherwise
    request time in [start, end). A ``partial`` window (the trailing one, still filling) replaces the
    previous partial window of the deployment."""
    if trigger == MonitoringWindow.Trigger.SCHEDULE and not partial and MonitoringWindow.objects.filter(
            deployment=deployment, start=start, end=end, first_request_id=first_request_id, trigger=trigger,
            partial=False).exists():
        return None  # a redelivered tick: already done
    ms = monitor_settings_for(deployment)
    th = drift.Thresholds.from_dict(ms.thresholds)
    span = rows_q(start=start, end=end, first_request_id=first_request_id, last_request_id=last_request_id)
    qs = PredictionLog.objects.filter(span, deployment=deployment).order_by()
    cap = settings.MONITORING_MAX_WINDOW_ROWS
    rows = list(qs.values_list("version_id", "inputs", "output", "probabilities", "latency_ms")[:cap])
    version_ids = [r[0] for r in rows]
    version = deployment.production_version
    if version_ids:
        vid = max(set(version_ids), key=version_ids.count)
        from apps.registry.models import ModelVersion

        version = ModelVersion.objects.filter(pk=vid).select_related("model").first() or version
    window = MonitoringWindow(deployment=deployment, version=version, trigger=trigger, start=start, end=end,
                              first_request_id=first_request_id, last_request_id=last_request_id, partial=partial,
                              n_rows=len(rows), volume=len(rows))
    chunk_size = ms.window_count if ms.window_kind == WindowKind.COUNT else max(len(rows), 100)
    result = None
    if rows:
        inputs = [r[1] for r in rows]
        latency = np.array([r[4] for r in rows], dtype=float)
        window.latency_p95_ms = _f(float(np.percentile(latency, 95)))
        profile = version.reference_profile or {}
        refs, pred_ref = _references(profile)
        times = _datetime_features(profile, refs)
        current = {name: (_epoch_values(inputs, name) if name in times else
                          drift.align_bool_values(ref, _column_values(inputs, name,
                                                                      isinstance(ref, drift.NumericReference))))
                   for name, ref in refs.items()}
        scores = None
        positive = (version.classes or [None, None])[-1] if len(version.classes or []) == 2 else None
        if pred_ref is not None:
            if isinstance(pred_ref, drift.NumericReference):
                scores = np.array([_positive_score(r[3], positive) if r[3] else
                                   (float(r[2]) if isinstance(r[2], (int, float)) else np.nan) for r in rows],
                                  dtype=float)
                pred_values = scores
            else:
                pred_values = np.array([None if r[2] is None else str(r[2]) for r in rows], dtype=object)
        else:
            pred_values = None
        overrides = {o.feature: o.values for o in ThresholdOverride.objects.filter(deployment=deployment)}
        sample = profile.get("sample") or None
        numeric = [n for n, r in refs.items() if isinstance(r, drift.NumericReference) and n not in times]
        pca = pca_reference(version, numeric=numeric, chunk_size=chunk_size, thresholds=th) if len(numeric) > 1 \
            else None
        result = drift.dataset_drift(refs, current, thresholds=th, overrides=overrides, prediction_reference=pred_ref,
                                     prediction_values=pred_values, pca=pca,
                                     reference_sample=(sample.get("features") if isinstance(sample, dict) else None))
        window.n_features = len(result.features)
        window.n_drifted = result.n_drifted
        window.share_drifted = result.share_drifted
        window.dataset_drifted = result.drifted
        window.domain_auc = result.domain.auc if result.domain else None
        if result.pca is not None:
            window.multivariate = {"method": "pca_reconstruction", "features": list(pca.features),
                                   "error": _f(result.pca.error), "reference_error": _f(result.pca.reference_error),
                                   "lower": _f(result.pca.lower), "upper": _f(result.pca.upper),
                                   "z": _f(result.pca.z), "p_value": _f(result.pca.p_value),
                                   "n_components": result.pca.n_components, "drifted": result.pca.drifted}
        window.quality = {f.feature: {"missing_rate": _f(f.missing_rate),
                                      "out_of_range_rate": _f(getattr(f, "out_of_range_rate", 0.0)),
                                      "unseen_rate": _f(getattr(f, "unseen_rate", 0.0))} for f in result.features}
        if result.prediction is not None:
            p = _feature_row(window, result.prediction)
            window.prediction_score = p.score
            window.prediction_drifted = p.drifted
            window.prediction_stats = {"kind": p.kind, "stats": p.stats, "histogram": p.histogram}
        try:
            _estimate(window, ms, version, rows, scores, th, current, chunk_size)
        except Exception:  # noqa: BLE001 - a broken reference must not lose the drift window
            log.exception("performance estimate failed for %s", deployment.slug)
    stats = PredictionMinuteStat.objects.filter(deployment=deployment, minute__gte=_floor(start, 1),
                                                minute__lte=end if first_request_id else end - timedelta(seconds=1))
    totals = [(s.requests, s.errors) for s in stats]
    requests = sum(t[0] for t in totals)
    window.error_rate = (sum(t[1] for t in totals) / requests) if requests else (0.0 if rows else None)
    _realized_fill(window, ms)
    if rows and deployment.input_mode == "entity":
        try:
            window.skew = skew_check(deployment=deployment, start=start, end=end, first_request_id=first_request_id,
                                     last_request_id=last_request_id)
        except Exception:  # noqa: BLE001 - a broken feature store must not lose the drift window
            log.exception("skew check failed for %s", deployment.slug)
    feature_set = getattr(deployment.registered_model, "feature_set", None)
    if feature_set is not None:
        try:
            from apps.features.services import feature_set_freshness

            window.feature_freshness = feature_set_freshness(feature_set=feature_set)  # as computed now
        except Exception:  # noqa: BLE001 - a broken feature store must not lose the drift window
            log.exception("feature freshness check failed for %s", deployment.slug)
    try:
        with transaction.atomic():
            if trigger == MonitoringWindow.Trigger.SCHEDULE:
                MonitoringWindow.objects.filter(deployment=deployment, partial=True).delete()
            window.save()
            if result is not None:
                feature_rows = [_feature_row(window, f) for f in result.features]
                for row in feature_rows:  # drawn on a time axis, not as seconds since 1970
                    if row.feature in times and row.kind == "numeric":
                        row.histogram["unit"] = "epoch_seconds"
                FeatureWindowStat.objects.bulk_create(feature_rows)
    except IntegrityError:
        return None
    if evaluate:
        alert_rules_evaluate(deployment=deployment, now=max(end, timezone.now()))
    return window


def _floor(t: datetime, minutes: int) -> datetime:
    epoch = int(t.timestamp())
    step = minutes * 60
    return datetime.fromtimestamp(epoch - epoch % step, tz=t.tzinfo or UTC)


def due_time_windows(ms: MonitorSettings, now: datetime) -> list[tuple[datetime, datetime]]:
    """The complete windows not yet computed, oldest first (at most ``MAX_WINDOWS_PER_TICK``)."""
    step = timedelta(minutes=ms.window_minutes)
    start = ms.last_window_end or (_floor(now, ms.window_minutes) - step)
    out = []
    while start + step <= now and len(out) < MAX_WINDOWS_PER_TICK:
        out.append((start, start + step))
        start += step
    return out


def monitoring_tick(*, now: datetime | None = None) -> dict:
    """The Celery beat entry point: compute every due window of every live, scheduled deployment."""
    now = now or timezone.now()
    done = 0
    for deployment in Deployment.objects.filter(status=DeploymentStatus.LIVE).select_related(
            "project", "registered_model", "production_version"):
        ms = monitor_settings_for(deployment)
        if not ms.schedule_enabled:
            continue
        try:
            outcomes_pending_match(deployment=deployment, now=now)
            done += _tick_deployment(deployment, ms, now)
        except Exception:  # noqa: BLE001 - one broken deployment must not stop the others
            log.exception("monitoring tick failed for deployment %s", deployment.slug)
    return {"windows": done}


def _after(t: datetime | None, rid) -> Q:
    if t is None:
        return Q()
    return Q(created_at__gt=t) | Q(created_at=t, request_id__gt=rid)


def _tick_deployment(deployment: Deployment, ms: MonitorSettings, now: datetime) -> int:
    """Close every complete window up to the log watermark, then (re)compute the trailing partial one."""
    done = 0
    mark = log_watermark(now)
    if ms.window_kind == WindowKind.TIME:
        for start, end in due_time_windows(ms, mark):
            window_compute(deployment=deployment, start=start, end=end)
            MonitorSettings.objects.filter(pk=ms.pk).update(last_window_end=end)
            ms.last_window_end = end
            done += 1
        start = ms.last_window_end
        if start is not None and start < now and _partial_due(deployment):
            latest = _partial_state(deployment)
            n = PredictionLog.objects.filter(deployment=deployment, created_at__gte=start, created_at__lt=now).count()
            if n and latest != (start, n):
                window_compute(deployment=deployment, start=start, end=now, partial=True, evaluate=False)
        return done
    base = PredictionLog.objects.filter(deployment=deployment, created_at__lt=mark).order_by("created_at", "request_id")
    while done < MAX_WINDOWS_PER_TICK:
        keys = list(base.filter(_after(ms.last_request_at, ms.last_request_id))
                    .values_list("created_at", "request_id")[: ms.window_count])
        if len(keys) < ms.window_count:
            if not _partial_due(deployment):
                break
            # the trailing window shows every row logged so far, settled or not: it is recomputed anyway
            keys = list(PredictionLog.objects.filter(_after(ms.last_request_at, ms.last_request_id),
                                                     deployment=deployment, created_at__lt=now)
                        .order_by("created_at", "request_id").values_list("created_at", "request_id")[: ms.window_count])
            if keys and _partial_state(deployment) != (keys[0][0], len(keys)):
                window_compute(deployment=deployment, start=keys[0][0], end=keys[-1][0],
                               first_request_id=keys[0][1], last_request_id=keys[-1][1], partial=True, evaluate=False)
            break
        window_compute(deployment=deployment, start=keys[0][0], end=keys[-1][0], first_request_id=keys[0][1],
                       last_request_id=keys[-1][1])
        MonitorSettings.objects.filter(pk=ms.pk).update(last_request_at=keys[-1][0], last_request_id=keys[-1][1])
        ms.last_request_at, ms.last_request_id = keys[-1]
        done += 1
    return done


def _partial_due(deployment: Deployment) -> bool:
    """The trailing partial window is shown at the first tick that sees rows (a new deployment's dashboard
    fills within a tick of its first predictions), then refreshed at most every
    ``MONITORING_PARTIAL_REFRESH_SECONDS`` — the tick itself runs more often than that."""
    made = MonitoringWindow.objects.filter(deployment=deployment, partial=True).values_list("created_at", flat=True).first()
    return made is None or (timezone.now() - made).total_seconds() >= settings.MONITORING_PARTIAL_REFRESH_SECONDS


def _partial_state(deployment: Deployment):
    w = MonitoringWindow.objects.filter(deployment=deployment, partial=True).values_list("start", "n_rows").first()
    return tuple(w) if w else None


def drift_check_request(*, deployment: Deployment, actor, minutes: int = 60):
    """An on-demand check of the last ``minutes`` (a Job; the page shows its progress)."""
    _require(actor, deployment, "monitoring.run")
    if minutes < MIN_WINDOW_MINUTES or minutes > CHECK_MAX_MINUTES:
        raise InvalidInput(f"Choose between {MIN_WINDOW_MINUTES} minutes and 31 days", field="minutes")
    return job_create(kind="monitoring.drift_check", actor=actor, project=deployment.project,
                      title=f"Drift check of {deployment.slug} (last {minutes} min)",
                      params={"deployment_id": deployment.pk, "minutes": minutes},
                      task="workers.monitoring.drift_check_run")


def drift_check_run(*, job) -> dict:
    deployment = Deployment.objects.select_related("project", "registered_model", "production_version").get(
        pk=job.params["deployment_id"])
    end = timezone.now()
    job_progress(job=job, progress=10, message="Reading the window")
    window = window_compute(deployment=deployment, start=end - timedelta(minutes=int(job.params["minutes"])),
                            end=end, trigger=MonitoringWindow.Trigger.MANUAL)
    return {"window_id": window.pk if window else None, "rows": window.n_rows if window else 0,
            "drifted_features": window.n_drifted if window else 0}

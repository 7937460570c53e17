"""Every write and rule of monitoring: outcomes, windows (drift + performance), alerts, notifications.

The math is in ``drift.py`` and ``performance.py``; this module loads data, calls them and stores the
per-window aggregates that pages and ``/metrics`` read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import numpy as np
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.errors import InvalidInput, NotFound, PayloadTooLarge, PermissionDenied
from apps.common.tasks import task_send
from apps.deployments.models import Deployment, DeploymentStatus, PredictionLog, PredictionMinuteStat
from apps.projects.permissions import can
from apps.projects.services import audit_record, job_create, job_progress

from . import drift, performance
from .models import (
    Alert,
    AlertRule,
    AlertStatus,
    Comparator,
    FeatureWindowStat,
    MonitoringWindow,
    MonitorSettings,
    Notification,
    Outcome,
    ThresholdOverride,
    WindowKind,
)

log = logging.getLogger(__name__)

MIN_WINDOW_MINUTES = 15
MAX_WINDOWS_PER_TICK = 96
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "r2")
METRICS: dict[str, str] = {
    "share_drifted": "Share of drifted features",
    "n_drifted": "Number of drifted features",
    "domain_auc": "Domain-classifier ROC AUC (multivariate drift)",
    "prediction_score": "Prediction distribution drift score",
    "error_rate": "Error rate of prediction requests",
    "latency_p95_ms": "Latency p95 (ms)",
    "volume": "Predictions in the window",
    "skew_rate": "Training-serving skew: highest per-feature mismatch rate",
    "feature_sla_breaches": "Feature views past their freshness SLA (of the model's feature set)",
    "feature_staleness_ratio": "Highest age / freshness SLA of the model's feature views (1 = at the SLA)",
    **{f"estimated_{m}": f"Estimated {m} (CBPE)" for m in ("accuracy", "precision", "recall", "f1", "roc_auc")},
    **{f"realized_{m}": f"Realized {m}" for m in CLASSIFICATION_METRICS + REGRESSION_METRICS},
}
COMPARE = {Comparator.GT: lambda v, t: v > t, Comparator.GTE: lambda v, t: v >= t,
           Comparator.LT: lambda v, t: v < t, Comparator.LTE: lambda v, t: v <= t}


def _require(user, deployment: Deployment, action: str) -> None:
    if not can(user, deployment.project, action):
        raise PermissionDenied(f"Your role in {deployment.project.name} does not allow {action}")


def _f(value) -> float | None:
    return drift.clean_float(value) if value is not None else None


# --- settings and overrides ------------------------------------------------------------------------


def monitor_settings_for(deployment: Deployment) -> MonitorSettings:
    obj, _ = MonitorSettings.objects.get_or_create(deployment=deployment)
    return obj


def monitor_settings_update(*, deployment: Deployment, actor, window_kind: str | None = None,
                            window_minutes: int | None = None, window_count: int | None = None,
                            schedule_enabled: bool | None = None, thresholds: dict | None = None,
                            decision_threshold: float | None = None) -> MonitorSettings:
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
    if decision_threshold is not None:
        ms.decision_threshold = float(decision_threshold)
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
    unknown = set(values) - {"alpha", "wasserstein", "js", "psi"}
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


# --- outcomes --------------------------------------------------------------------------------------

MAX_OUTCOMES = 100_000
_CHUNK = 5000


def _parse_outcomes(items) -> list[tuple[uuid.UUID, object]]:
    if not isinstance(items, list):
        raise InvalidInput("'outcomes' must be a list of {request_id, label} objects", field="outcomes")
    if len(items) > MAX_OUTCOMES:
        raise PayloadTooLarge(f"At most {MAX_OUTCOMES:,} outcomes per request (got {len(items):,})")
    parsed, errors = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"field": f"outcomes.{i}", "message": "must be an object"})
            continue
        rid, label = item.get("request_id"), item.get("label")
        try:
            rid = uuid.UUID(rid) if isinstance(rid, str) else None
        except ValueError:
            rid = None
        if rid is None:
            errors.append({"field": f"outcomes.{i}.request_id", "message": "must be a UUID string"})
        if isinstance(label, (dict, list)) or label is None or (isinstance(label, float) and not math.isfinite(label)):
            errors.append({"field": f"outcomes.{i}.label", "message": "must be a string, number or boolean"})
        if len(errors) >= 50:
            break
        parsed.append((rid, label))
    if errors:
        raise InvalidInput(f"{len(errors)} invalid outcome(s); nothing was stored", errors=errors)
    return parsed


def _positive_score(probabilities, positive) -> float | None:
    if not isinstance(probabilities, dict) or len(probabilities) != 2:
        return None
    key = str(positive) if positive is not None else sorted(probabilities)[-1]
    value = probabilities.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def _positive_class(deployment: Deployment):
    classes = deployment.production_version.classes or []
    return classes[-1] if len(classes) == 2 else None


def outcomes_ingest(*, deployment: Deployment, actor, items, now: datetime | None = None) -> dict:
    """Store ground truth by request id. Idempotent: a repeat with the same label changes nothing; a
    repeat with another label is reported as a conflict and the stored label is kept; unknown request
    ids (or ids of another deployment) are listed, not fatal. Late arrivals are accepted whatever
    their age; the label latency (received − predicted) is stored per outcome."""
    _require(actor, deployment, "outcome.post")
    parsed = _parse_outcomes(items)
    now = now or timezone.now()
    by_id: dict[uuid.UUID, object] = {}
    conflicts, duplicates = [], 0
    for rid, label in parsed:
        if rid in by_id:
            if json.dumps(by_id[rid]) != json.dumps(label):
                conflicts.append({"request_id": str(rid), "stored": by_id[rid], "received": label})
            else:
                duplicates += 1
            continue
        by_id[rid] = label
    in_batch_conflicts = {c["request_id"] for c in conflicts}
    positive = _positive_class(deployment)
    ids = [rid for rid in by_id if str(rid) not in in_batch_conflicts]
    unknown, created, unchanged = [], 0, 0
    t_min = t_max = None
    latencies = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        logs = {r[0]: r for r in PredictionLog.objects.filter(deployment=deployment, request_id__in=chunk)
                .values_list("request_id", "version_id", "created_at", "output", "probabilities")}
        existing = dict(Outcome.objects.filter(request_id__in=chunk).values_list("request_id", "label"))
        new = []
        for rid in chunk:
            label = by_id[rid]
            if rid in existing:
                if json.dumps(existing[rid]) == json.dumps(label):
                    unchanged += 1
                else:
                    conflicts.append({"request_id": str(rid), "stored": existing[rid], "received": label})
                continue
            row = logs.get(rid)
            if row is None:
                unknown.append(str(rid))
                continue
            latency = (now - row[2]).total_seconds()
            latencies.append(latency)
            t_min = row[2] if t_min is None or row[2] < t_min else t_min
            t_max = row[2] if t_max is None or row[2] > t_max else t_max
            new.append(Outcome(deployment=deployment, request_id=rid, version_id=row[1], label=label, output=row[3],
                               score=_positive_score(row[4], positive), predicted_at=row[2], received_at=now,
                               label_latency_s=latency))
        with transaction.atomic():
            created += len(Outcome.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True))
    if created:
        transaction.on_commit(partial(_enqueue_performance_refresh, deployment.pk, t_min, t_max))
    return {"received": len(parsed), "created": created, "unchanged": unchanged + duplicates,
            "conflicts": conflicts, "unknown_request_ids": unknown,
            "label_latency_s": {"median": _f(float(np.median(latencies))) if latencies else None,
                                "max": _f(max(latencies)) if latencies else None}}


def _enqueue_performance_refresh(deployment_id: int, t_min: datetime, t_max: datetime) -> None:
    task_send("workers.monitoring.performance_refresh", deployment_id, t_min.isoformat(), t_max.isoformat())


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


def _metric_dict(values: dict) -> dict:
    return {k: {"value": _f(v.value), "low": _f(v.low), "high": _f(v.high), "n": v.n} for k, v in values.items()}


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
    stats = {k: (_f(v) if isinstance(v, float) else v) for k, v in stats.items()}
    stats["flags"] = list(res.flags)
    return FeatureWindowStat(window=window, feature=res.feature, kind=res.kind, score=_f(res.score) or 0.0,
                             drifted=res.drifted, stats=stats, histogram=hist)


def window_compute(*, deployment: Deployment, start: datetime, end: datetime,
                   trigger: str = MonitoringWindow.Trigger.SCHEDULE, id_range: tuple[int, int] | None = None,
                   evaluate: bool = True) -> MonitoringWindow | None:
    """Drift, quality, prediction distribution, volume/latency and performance of one window; stored
    as a ``MonitoringWindow`` with one ``FeatureWindowStat`` per feature, then alert rules run."""
    if trigger == MonitoringWindow.Trigger.SCHEDULE and MonitoringWindow.objects.filter(
            deployment=deployment, start=start, end=end, trigger=trigger).exists():
        return None  # a redelivered tick: already done
    ms = monitor_settings_for(deployment)
    qs = PredictionLog.objects.filter(deployment=deployment).order_by()
    qs = qs.filter(id__gte=id_range[0], id__lte=id_range[1]) if id_range else qs.filter(created_at__gte=start,
                                                                                       created_at__lt=end)
    cap = settings.MONITORING_MAX_WINDOW_ROWS
    rows = list(qs.values_list("version_id", "inputs", "output", "probabilities", "latency_ms")[:cap])
    version_ids = [r[0] for r in rows]
    version = deployment.production_version
    if version_ids:
        vid = max(set(version_ids), key=version_ids.count)
        from apps.registry.models import ModelVersion

        version = ModelVersion.objects.filter(pk=vid).select_related("model").first() or version
    window = MonitoringWindow(deployment=deployment, version=version, trigger=trigger, start=start, end=end,
                              n_rows=len(rows), volume=len(rows))
    result = None
    if rows:
        inputs = [r[1] for r in rows]
        latency = np.array([r[4] for r in rows], dtype=float)
        window.latency_p95_ms = _f(float(np.percentile(latency, 95)))
        profile = version.reference_profile or {}
        refs, pred_ref = _references(profile)
        current = {name: _column_values(inputs, name, isinstance(ref, drift.NumericReference))
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
        result = drift.dataset_drift(refs, current, thresholds=drift.Thresholds.from_dict(ms.thresholds),
                                     overrides=overrides, prediction_reference=pred_ref,
                                     prediction_values=pred_values,
                                     reference_sample=(sample.get("features") if isinstance(sample, dict) else None))
        window.n_features = len(result.features)
        window.n_drifted = result.n_drifted
        window.share_drifted = result.share_drifted
        window.dataset_drifted = result.drifted
        window.domain_auc = result.domain.auc if result.domain else None
        window.quality = {f.feature: {"missing_rate": _f(f.missing_rate),
                                      "out_of_range_rate": _f(getattr(f, "out_of_range_rate", 0.0)),
                                      "unseen_rate": _f(getattr(f, "unseen_rate", 0.0))} for f in result.features}
        if result.prediction is not None:
            p = _feature_row(window, result.prediction)
            window.prediction_score = p.score
            window.prediction_drifted = p.drifted
            window.prediction_stats = {"kind": p.kind, "stats": p.stats, "histogram": p.histogram}
        if not ms.calibration and isinstance(sample, dict) and positive is not None:
            _calibrate_from_sample(ms, sample, positive)
        if ms.calibration and scores is not None:
            cal = performance.Calibrator.from_dict(ms.calibration)
            ok = scores[~np.isnan(scores)]
            window.estimated = _metric_dict(performance.cbpe_estimate(ok, cal, threshold=ms.decision_threshold))
    stats = PredictionMinuteStat.objects.filter(deployment=deployment, minute__gte=start, minute__lt=end)
    totals = [(s.requests, s.errors) for s in stats]
    requests = sum(t[0] for t in totals)
    window.error_rate = (sum(t[1] for t in totals) / requests) if requests else (0.0 if rows else None)
    _realized_fill(window)
    if rows and deployment.input_mode == "entity":
        try:
            window.skew = skew_check(deployment=deployment, start=start, end=end)
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
            window.save()
            if result is not None:
                FeatureWindowStat.objects.bulk_create([_feature_row(window, f) for f in result.features])
    except IntegrityError:
        return None
    if evaluate:
        alert_rules_evaluate(deployment=deployment, now=max(end, timezone.now()))
    return window


SKEW_SAMPLE = 500


def _same(a, b) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return (a is None or (isinstance(a, float) and math.isnan(a))) == \
            (b is None or (isinstance(b, float) and math.isnan(b)))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-6 * (1 + abs(float(b)))
    return str(a) == str(b)


def skew_check(*, deployment: Deployment, start: datetime, end: datetime, sample: int = SKEW_SAMPLE,
               seed: int = 0) -> dict[str, float]:
    """Training-serving skew of an entity-key deployment: a seeded sample of the window's logged
    feature vectors is recomputed offline by the feature store's point-in-time join as of each request
    time; returns the mismatch rate per feature (``{}`` when not applicable)."""
    feature_set = getattr(deployment.registered_model, "feature_set", None)
    if deployment.input_mode != "entity" or feature_set is None:
        return {}
    from apps.features import services as fs

    keys = fs._lookup_plan(feature_set)["join_keys"]
    if len(keys) != 1:
        return {}
    ids = list(PredictionLog.objects.filter(deployment=deployment, created_at__gte=start, created_at__lt=end,
                                            entity_key__isnull=False).values_list("id", flat=True))
    if not ids:
        return {}
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(sample, len(ids)), replace=False).tolist()
    rows = list(PredictionLog.objects.filter(id__in=chosen).order_by("id")
                .values_list("entity_key", "created_at", "inputs"))
    import polars as pl

    labels = pl.DataFrame({keys[0]: [r[0] for r in rows], "__as_of": [r[1] for r in rows]})
    frame = fs.training_set_build_frame(feature_set=feature_set, labels=labels, timestamp_column="__as_of")
    out = {}
    for name in feature_set.output_names:
        if name not in frame.columns:
            continue
        offline = frame.get_column(name).to_list()
        logged = [(r[2] or {}).get(name) for r in rows]
        out[name] = sum(not _same(a, b) for a, b in zip(logged, offline, strict=True)) / len(rows)
    return out


def _calibrate_from_sample(ms: MonitorSettings, sample: dict, positive) -> None:
    """CBPE calibrator from the reference profile's sample (scores + true labels), when it has both."""
    scores, labels = sample.get("score"), sample.get("label")
    if not scores or not labels or len(scores) != len(labels):
        return
    y = [1 if str(v) == str(positive) else 0 for v in labels]
    if len(set(y)) < 2 or len(y) < 50:
        return
    ms.calibration = performance.calibrator_fit(scores, y).to_dict()
    ms.calibration_source = f"reference profile sample ({len(y)} rows)"
    MonitorSettings.objects.filter(pk=ms.pk).update(calibration=ms.calibration,
                                                    calibration_source=ms.calibration_source)


def _realized_fill(window: MonitoringWindow) -> None:
    outcomes = list(Outcome.objects.filter(deployment=window.deployment, predicted_at__gte=window.start,
                                           predicted_at__lt=window.end).values_list("label", "output", "score"))
    window.n_labelled = len(outcomes)
    if not outcomes:
        window.realized = {}
        return
    task = window.deployment.registered_model.task
    labels = [o[0] for o in outcomes]
    preds = [o[1] for o in outcomes]
    if task == "regression":
        ok = [(float(y), float(p)) for y, p in zip(labels, preds, strict=True)
              if isinstance(y, (int, float)) and isinstance(p, (int, float))]
        if ok:
            window.realized = _metric_dict(performance.regression_metrics([o[0] for o in ok], [o[1] for o in ok]))
        return
    y = [str(v) for v in labels]
    p = [str(v) for v in preds]
    scores = [o[2] for o in outcomes]
    positive = _positive_class(window.deployment)
    use_scores = task == "binary_classification" and all(s is not None for s in scores)
    window.realized = _metric_dict(performance.classification_metrics(
        y, p, scores if use_scores else None, positive=str(positive) if positive is not None else sorted(set(y))[-1]))


def performance_refresh(*, deployment_id: int, since: datetime, until: datetime) -> int:
    """Recompute realized performance of the windows that late outcomes fall into; re-run the rules."""
    deployment = Deployment.objects.filter(pk=deployment_id).select_related("registered_model",
                                                                            "production_version").first()
    if deployment is None:
        return 0
    windows = list(MonitoringWindow.objects.filter(deployment=deployment, end__gt=since, start__lte=until))
    for w in windows:
        _realized_fill(w)
        w.save(update_fields=["realized", "n_labelled"])
    if windows:
        alert_rules_evaluate(deployment=deployment, now=timezone.now())
    return len(windows)


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
            done += _tick_deployment(deployment, ms, now)
        except Exception:  # noqa: BLE001 - one broken deployment must not stop the others
            log.exception("monitoring tick failed for deployment %s", deployment.slug)
    return {"windows": done}


def _tick_deployment(deployment: Deployment, ms: MonitorSettings, now: datetime) -> int:
    done = 0
    if ms.window_kind == WindowKind.TIME:
        for start, end in due_time_windows(ms, now):
            window_compute(deployment=deployment, start=start, end=end)
            MonitorSettings.objects.filter(pk=ms.pk).update(last_window_end=end)
            ms.last_window_end = end
            done += 1
        return done
    while done < MAX_WINDOWS_PER_TICK:
        ids = list(PredictionLog.objects.filter(deployment=deployment, id__gt=ms.last_log_id).order_by("id")
                   .values_list("id", "created_at")[: ms.window_count])
        if len(ids) < ms.window_count:
            break
        window_compute(deployment=deployment, start=ids[0][1], end=ids[-1][1] + timedelta(microseconds=1),
                       id_range=(ids[0][0], ids[-1][0]))
        MonitorSettings.objects.filter(pk=ms.pk).update(last_log_id=ids[-1][0])
        ms.last_log_id = ids[-1][0]
        done += 1
    return done


def drift_check_request(*, deployment: Deployment, actor, minutes: int = 60):
    """An on-demand check of the last ``minutes`` (a Job; the page shows its progress)."""
    _require(actor, deployment, "monitoring.run")
    if minutes < MIN_WINDOW_MINUTES or minutes > 60 * 24 * 31:
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


def calibration_fit(*, deployment: Deployment, actor, scores, labels, source: str,
                    method: str = "isotonic") -> MonitorSettings:
    """Fit the CBPE calibrator on reference data (the model's positive-class scores and true labels)."""
    _require(actor, deployment, "monitoring.configure")
    if len(scores) != len(labels) or len(scores) < 50:
        raise InvalidInput("Calibration needs at least 50 (score, label) pairs of equal length", field="scores")
    ms = monitor_settings_for(deployment)
    ms.calibration = performance.calibrator_fit(scores, labels, method=method).to_dict()
    ms.calibration_source = source[:200]
    ms.save(update_fields=["calibration", "calibration_source", "updated_at"])
    return ms


# --- alerts ----------------------------------------------------------------------------------------


def window_metric(window: MonitoringWindow, metric: str) -> float | None:
    if metric.startswith("drift:"):
        row = next((f for f in window.features.all() if f.feature == metric[6:]), None)
        return row.score if row else None
    if metric.startswith("estimated_"):
        return (window.estimated.get(metric[10:]) or {}).get("value")
    if metric.startswith("realized_"):
        return (window.realized.get(metric[9:]) or {}).get("value")
    if metric == "skew_rate":
        return max(window.skew.values()) if window.skew else None
    if metric == "feature_sla_breaches":
        fresh = window.feature_freshness or {}
        return float(sum(1 for f in fresh.values() if f.get("breached"))) if fresh else None
    if metric == "feature_staleness_ratio":
        ratios = [(f["age_seconds"] / f["sla_seconds"]) if f.get("age_seconds") is not None else math.inf
                  for f in (window.feature_freshness or {}).values() if f.get("sla_seconds")]
        return max(ratios) if ratios else None
    value = getattr(window, metric, None)
    return float(value) if value is not None else None


def _validate_metric(metric: str) -> None:
    if metric not in METRICS and not (metric.startswith("drift:") and len(metric) > 6):
        raise InvalidInput(f"Unknown metric {metric!r}", field="metric")


def alert_rule_create(*, deployment: Deployment, actor, name: str, metric: str, comparator: str, threshold: float,
                      consecutive: int = 1, severity: str = "warning", channels=(), emails=(), webhook_url: str = "",
                      webhook_secret: str = "", cooldown_minutes: int = 60, owner=None) -> AlertRule:
    _require(actor, deployment, "monitoring.configure")
    _validate_metric(metric)
    if comparator not in Comparator.values:
        raise InvalidInput("comparator must be gt, gte, lt or lte", field="comparator")
    if consecutive < 1:
        raise InvalidInput("At least one window", field="consecutive")
    channels = list(channels)
    if set(channels) - {"email", "webhook"}:
        raise InvalidInput("Channels are email and webhook", field="channels")
    if "webhook" in channels and not (webhook_url and webhook_secret):
        raise InvalidInput("A webhook needs a URL and a signing secret", field="webhook_url")
    rule = AlertRule.objects.create(deployment=deployment, name=name, metric=metric, comparator=comparator,
                                    threshold=threshold, consecutive=consecutive, severity=severity,
                                    channels=channels, emails=list(emails), webhook_url=webhook_url,
                                    webhook_secret=webhook_secret, cooldown_minutes=cooldown_minutes,
                                    owner=owner or actor, created_by=actor)
    audit_record(actor=actor, verb="monitoring.alert_rule_create", project=deployment.project, target=rule,
                 details={"metric": metric, "comparator": comparator, "threshold": threshold})
    return rule


def alert_rules_evaluate(*, deployment: Deployment, now: datetime | None = None) -> list[Alert]:
    """Open alerts for rules breached N windows in a row (no duplicate while one is active, none
    during the cooldown after a resolution); resolve active alerts whose metric recovered."""
    now = now or timezone.now()
    rules = list(AlertRule.objects.filter(deployment=deployment, enabled=True))
    if not rules:
        return []
    windows = list(MonitoringWindow.objects.filter(deployment=deployment).prefetch_related("features")
                   .order_by("-end", "-id")[:100])
    opened = []
    for rule in rules:
        values = [(w, v) for w in windows if (v := window_metric(w, rule.metric)) is not None]
        if not values:
            continue
        check = COMPARE[rule.comparator]
        latest_window, latest = values[0]
        active = Alert.objects.filter(rule=rule, status__in=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]).first()
        if active is not None:
            if not check(latest, rule.threshold):
                _alert_resolve(active, latest, now)
            continue
        recent = values[: rule.consecutive]
        if len(recent) < rule.consecutive or not all(check(v, rule.threshold) for _, v in recent):
            continue
        last = Alert.objects.filter(rule=rule, status=AlertStatus.RESOLVED).order_by("-resolved_at").first()
        if last and last.resolved_at and now < last.resolved_at + timedelta(minutes=rule.cooldown_minutes):
            continue
        alert = _alert_open(rule, latest_window, latest, now, snoozed_until=last.snoozed_until if last else None)
        if alert:
            opened.append(alert)
    return opened


def _alert_open(rule: AlertRule, window, value: float, now: datetime, snoozed_until=None) -> Alert | None:
    msg = (f"{rule.name}: {rule.metric} = {value:.4g} {Comparator(rule.comparator).label} {rule.threshold:g} "
           f"for {rule.consecutive} window(s) on {rule.deployment.slug}")
    try:
        with transaction.atomic():
            alert = Alert.objects.create(rule=rule, deployment=rule.deployment, severity=rule.severity, value=value,
                                         message=msg[:500], window=window, opened_at=now,
                                         snoozed_until=snoozed_until if snoozed_until and snoozed_until > now else None)
            _notify(alert, "opened")
    except IntegrityError:
        return None  # another worker opened it first
    return alert


def _alert_resolve(alert: Alert, value: float, now: datetime) -> None:
    with transaction.atomic():
        updated = Alert.objects.filter(pk=alert.pk, status__in=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]).update(
            status=AlertStatus.RESOLVED, resolved_at=now, resolved_value=value)
        if updated:
            alert.refresh_from_db()
            _notify(alert, "resolved")


def _payload(alert: Alert, event: str) -> dict:
    rule = alert.rule
    return {"event": f"alert.{event}", "alert_id": alert.pk, "rule": rule.name, "metric": rule.metric,
            "comparator": rule.comparator, "threshold": rule.threshold, "value": alert.value,
            "resolved_value": alert.resolved_value, "severity": alert.severity, "status": alert.status,
            "deployment": alert.deployment.slug, "project": alert.deployment.project.slug,
            "message": alert.message, "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None}


def _notify(alert: Alert, event: str) -> None:
    rule = alert.rule
    suppressed = bool(alert.snoozed_until and alert.snoozed_until > timezone.now())
    payload = _payload(alert, event)
    for channel in rule.channels:
        if channel == "email":
            targets = list(rule.emails) or ([rule.owner.email] if rule.owner and rule.owner.email else [])
            target = ",".join(targets)
        else:
            target = rule.webhook_url
        if not target:
            continue
        n = Notification.objects.create(alert=alert, channel=channel, event=event, target=target[:500],
                                        payload=payload, status=Notification.Status.SUPPRESSED if suppressed
                                        else Notification.Status.PENDING)
        if not suppressed:
            transaction.on_commit(partial(_enqueue_notification, n.pk))


def _enqueue_notification(notification_id: int) -> None:
    task_send("workers.monitoring.notification_deliver", notification_id)


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Slipway-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the rule secret>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def notification_deliver(*, notification_id: int, final_attempt: bool = False) -> bool:
    """Send one notification. Returns True when delivered (or nothing to do), False to retry."""
    n = Notification.objects.select_related("alert__rule").filter(pk=notification_id).first()
    if n is None or n.status in (Notification.Status.DELIVERED, Notification.Status.SUPPRESSED):
        return True
    n.attempts += 1
    rule = n.alert.rule
    try:
        if n.channel == "email":
            subject = f"[Slipway {n.alert.severity}] {n.payload.get('event')}: {rule.name}"
            send_mail(subject, json.dumps(n.payload, indent=2), None, n.target.split(","))
            n.response_code = None
        else:
            import urllib.request

            body = json.dumps(n.payload, sort_keys=True).encode()
            ts = str(int(timezone.now().timestamp()))
            req = urllib.request.Request(n.target, data=body, method="POST", headers={
                "Content-Type": "application/json", "User-Agent": "Slipway-Webhook/1",
                "X-Slipway-Event": n.payload.get("event", ""), "X-Slipway-Timestamp": ts,
                "X-Slipway-Delivery": str(n.pk), "X-Slipway-Signature": webhook_signature(rule.webhook_secret, ts, body)})
            with urllib.request.urlopen(req, timeout=settings.MONITORING_WEBHOOK_TIMEOUT_S) as resp:  # noqa: S310
                n.response_code = resp.status
        n.status, n.delivered_at, n.error = Notification.Status.DELIVERED, timezone.now(), ""
        n.save()
        return True
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
        n.response_code = getattr(exc, "code", None)
        n.error = f"{type(exc).__name__}: {exc}"[:500]
        n.status = Notification.Status.FAILED if final_attempt else Notification.Status.RETRYING
        n.save()
        return False


def _alert_for_user(*, user, alert_id: int, action: str) -> Alert:
    alert = Alert.objects.select_related("deployment__project", "rule").filter(pk=alert_id).first()
    if alert is None or not can(user, alert.deployment.project, "monitoring.view"):
        raise NotFound("No such alert")
    _require(user, alert.deployment, action)
    return alert


def alert_acknowledge(*, alert: Alert, actor) -> Alert:
    _require(actor, alert.deployment, "alert.acknowledge")
    if alert.status != AlertStatus.OPEN:
        raise InvalidInput(f"Only open alerts can be acknowledged (this one is {alert.status})")
    alert.status, alert.acknowledged_by, alert.acknowledged_at = AlertStatus.ACKNOWLEDGED, actor, timezone.now()
    alert.save(update_fields=["status", "acknowledged_by", "acknowledged_at"])
    audit_record(actor=actor, verb="monitoring.alert_acknowledge", project=alert.deployment.project, target=alert)
    return alert


def alert_snooze(*, alert: Alert, actor, minutes: int) -> Alert:
    _require(actor, alert.deployment, "alert.acknowledge")
    if not 1 <= minutes <= 60 * 24 * 14:
        raise InvalidInput("Snooze between 1 minute and 14 days", field="minutes")
    alert.snoozed_until = timezone.now() + timedelta(minutes=minutes)
    alert.save(update_fields=["snoozed_until"])
    audit_record(actor=actor, verb="monitoring.alert_snooze", project=alert.deployment.project, target=alert,
                 details={"minutes": minutes})
    return alert

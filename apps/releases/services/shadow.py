"""Shadow runs: candidates score the logged production traffic in batches, off the request path.

``shadow_run_start`` / ``shadow_run_stop`` are the user actions. Scoring happens only in Celery:
``shadow_tick`` (beat, every ``SHADOW_TICK_SECONDS``) scores every active run, and
``shadow_run_score_request`` → ``shadow_run_score`` (a Job, on demand). A batch is scored under a row
lock on the run, so two workers never score the same rows twice; the cursor is the prediction-log id.
After scoring, ``shadow_run_compare`` recomputes the comparison (``shadow_stats.compare``), taking the
outcomes either as an argument or from monitoring's outcomes (``outcome_labels_for_requests``).
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from apps.common.tasks import task_send
from apps.deployments.models import Deployment, PredictionLog
from apps.monitoring.selectors import outcome_labels_for_requests
from apps.projects.permissions import can
from apps.projects.services import audit_record, job_create, job_progress

from .. import shadow_stats
from ..models import ShadowPrediction, ShadowRun, ShadowStatus
from ..policy import promotion_policy

logger = logging.getLogger("slipway.deployments.shadow")

_predictors: dict[tuple, object] = {}
_predictors_lock = threading.Lock()


def _require(user, project, action: str) -> None:
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")


def _candidate_check(deployment: Deployment, candidate, *, allow_production: bool = False) -> None:
    from apps.registry.models import VersionStatus

    if candidate is None:
        raise InvalidInput("Choose a candidate version", field="candidate")
    if candidate.model_id != deployment.registered_model_id:
        raise InvalidInput(f"{candidate} is not a version of {deployment.registered_model.name}, the model this "
                           "deployment serves (a candidate must share its model and input contract)",
                           field="candidate")
    if candidate.status != VersionStatus.READY:
        raise InvalidInput(f"{candidate} is {candidate.status}: only a ready (validated) version can shadow",
                           field="candidate")
    if candidate.pk == deployment.production_version_id and not allow_production:
        raise InvalidInput(f"{candidate} is the production version already", field="candidate")


def shadow_run_start(*, deployment: Deployment, actor, candidate, backfill_hours: float = 24.0) -> ShadowRun:
    """Start shadowing ``candidate`` on ``deployment``; it also scores traffic of the last ``backfill_hours``
    — but never traffic from before the candidate's training-data cut-off (its registration: whatever
    trained it existed by then, e.g. a retraining's window of outcomes), so the run holds out-of-sample
    requests only, the same rule the comparison applies."""
    _require(actor, deployment.project, "shadow.manage")
    _candidate_check(deployment, candidate)
    try:
        backfill_hours = float(backfill_hours)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("Backfill must be a number of hours", field="backfill_hours") from exc
    if not 0 <= backfill_hours <= 24 * 90:
        raise InvalidInput("Backfill must be between 0 and 2160 hours (90 days)", field="backfill_hours")
    since = max(timezone.now() - timedelta(hours=backfill_hours), candidate.created_at)
    try:
        with transaction.atomic():
            run = ShadowRun.objects.create(deployment=deployment, candidate=candidate, since=since, started_by=actor)
            audit_record(actor=actor, verb="shadow.start", project=deployment.project, target=run,
                         target_label=f"{deployment.slug}: {candidate}",
                         details={"deployment": deployment.slug, "candidate": str(candidate),
                                  "candidate_id": candidate.pk, "backfill_hours": backfill_hours,
                                  "since": since.isoformat(), "cutoff": candidate.created_at.isoformat()})
    except IntegrityError as exc:
        raise Conflict(f"{candidate} is already shadowing {deployment.slug}", field="candidate") from exc
    transaction.on_commit(lambda: _enqueue_score(run.pk))
    return run


def _enqueue_score(run_id: int) -> None:
    """Score a fresh run right away (best effort; the beat tick catches up anyway)."""
    task_send("workers.releases.shadow_run_score_now", run_id, best_effort=True)


def shadow_run_stop(*, run: ShadowRun, actor) -> ShadowRun:
    _require(actor, run.deployment.project, "shadow.manage")
    with transaction.atomic():
        run = ShadowRun.objects.select_for_update().get(pk=run.pk)
        if run.status == ShadowStatus.STOPPED:
            raise Conflict("This shadow run is already stopped")
        run.status, run.stopped_by, run.stopped_at = ShadowStatus.STOPPED, actor, timezone.now()
        run.save(update_fields=["status", "stopped_by", "stopped_at"])
        audit_record(actor=actor, verb="shadow.stop", project=run.deployment.project, target=run,
                     target_label=f"{run.deployment.slug}: {run.candidate}", details={"scored": run.scored})
    return run


def shadow_run_resume(*, run: ShadowRun, actor) -> ShadowRun:
    """Resume a run an emergency rollback paused: it scores on from its cursor (the traffic logged during
    the pause included), recorded on the deployment's timeline."""
    from apps.deployments.models import DeploymentEvent

    _require(actor, run.deployment.project, "shadow.manage")
    try:
        with transaction.atomic():
            run = ShadowRun.objects.select_for_update().select_related("deployment", "candidate").get(pk=run.pk)
            if run.status != ShadowStatus.PAUSED:
                raise Conflict(f"This shadow run is {run.status}, not paused")
            if run.candidate_id == run.deployment.production_version_id:
                raise Conflict(f"{run.candidate} is the production version now: there is nothing to shadow")
            run.status, run.paused_at = ShadowStatus.ACTIVE, None
            run.save(update_fields=["status", "paused_at"])
            DeploymentEvent.objects.create(deployment=run.deployment, kind="shadow", version=run.candidate, actor=actor,
                                           reason=f"Shadow run #{run.pk} of {run.candidate} resumed")
            audit_record(actor=actor, verb="shadow.resume", project=run.deployment.project, target=run,
                         target_label=f"{run.deployment.slug}: {run.candidate}", details={"scored": run.scored})
    except IntegrityError as exc:
        raise Conflict(f"{run.candidate} is already shadowing {run.deployment.slug} in another run") from exc
    transaction.on_commit(lambda: _enqueue_score(run.pk))
    return run


def shadow_run_score_request(*, run: ShadowRun, actor):
    """On demand: a Job that scores what is pending and refreshes the comparison."""
    _require(actor, run.deployment.project, "shadow.manage")
    return job_create(kind="shadow.score", actor=actor, project=run.deployment.project,
                      title=f"Shadow scoring of {run.candidate} on {run.deployment.slug}",
                      params={"run_id": run.pk}, task="workers.releases.shadow_run_score")


# --- scoring (workers only) ----------------------------------------------------------------------


def _predictor(version):
    # Keyed by the artifact too: a version is immutable, but a pk can be reused (a test database
    # flushed between tests, a restored backup) and a long-lived worker must never score with the
    # model of another version.
    key = (version.pk, version.artifact_sha256)
    with _predictors_lock:
        pred = _predictors.get(key)
        if pred is None:
            from apps.registry.loading import load_predictor

            pred = load_predictor(version)
            if len(_predictors) >= 8:
                _predictors.pop(next(iter(_predictors)))
            _predictors[key] = pred
    return pred


def _positive_class(version) -> str | None:
    classes = version.classes or []
    return str(classes[-1]) if len(classes) == 2 else None


def _scalar(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _matrix(rows: list[PredictionLog], names: list[str]) -> np.ndarray:
    out = np.empty((len(rows), len(names)), dtype="float64")
    for i, row in enumerate(rows):
        inputs = row.inputs or {}
        for j, name in enumerate(names):
            v = inputs.get(name)
            out[i, j] = np.nan if v is None else float(v)
    return out


def _model_input(rows: list[PredictionLog], version, names: list[str]):
    """The logged inputs as the candidate takes them: the float matrix, or — for a contract with text or
    datetime features — the typed DataFrame serving builds (apps.registry.contract)."""
    from apps.registry import contract as spec

    contract = version.model.input_contract or []
    if contract and not spec.is_numeric_only(contract):
        canonical = spec.normalize_contract(contract)
        return spec.typed_frame([[(row.inputs or {}).get(c["name"]) for row in rows] for c in canonical], canonical)
    return _matrix(rows, names)


def _score_batch(run_id: int, batch_size: int) -> int:
    """Score the next batch of a run (under a row lock). Returns rows scored; 0 when nothing is pending."""
    with transaction.atomic():
        run = (ShadowRun.objects.select_for_update(of=("self",))
               .select_related("candidate__model", "deployment").filter(pk=run_id).first())
        if run is None or run.status != ShadowStatus.ACTIVE:
            return 0
        rows = list(PredictionLog.objects.filter(deployment_id=run.deployment_id, id__gt=run.last_log_id,
                                                 created_at__gte=run.since)
                    .exclude(version_id=run.candidate_id).order_by("id")[:batch_size])
        if not rows:
            return 0
        candidate = run.candidate
        positive = _positive_class(candidate)
        scored, failed, error = [], 0, ""
        try:
            predictor = _predictor(candidate)
            labels, proba = predictor.predict(_model_input(rows, candidate, predictor.feature_names))
            classes = [str(_scalar(c)) for c in (predictor.classes or [])]
            pos_index = classes.index(positive) if positive is not None and positive in classes else None
            for i, row in enumerate(rows):
                c_score = float(proba[i, pos_index]) if proba is not None and pos_index is not None else None
                p_score = None
                if positive is not None and isinstance(row.probabilities, dict):
                    p_score = row.probabilities.get(positive)
                scored.append(ShadowPrediction(
                    run=run, request_id=row.request_id, log_id=row.pk, created_at=row.created_at,
                    production_version_id=row.version_id, production_output=row.output, production_score=p_score,
                    candidate_output=_scalar(labels[i]), candidate_score=c_score))
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot score a batch must not stop the run
            failed = len(rows)
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            logger.warning("Shadow run %s could not score %s rows: %s", run.pk, failed, error)
        ShadowPrediction.objects.bulk_create(scored, ignore_conflicts=True)
        run.last_log_id = rows[-1].pk
        run.scored += len(scored)
        run.failed += failed
        run.last_error = error or run.last_error
        run.scored_at = timezone.now()
        run.save(update_fields=["last_log_id", "scored", "failed", "last_error", "scored_at"])
        return len(rows)


def shadow_run_score_pending(*, run_id: int, max_rows: int | None = None, progress=None,
                             force_compare: bool = False) -> int:
    """Score every pending row of a run (bounded by ``max_rows``), batch by batch; then compare."""
    batch = settings.SHADOW_BATCH_SIZE
    limit = settings.SHADOW_MAX_ROWS_PER_PASS if max_rows is None else max_rows
    done = 0
    while done < limit:
        n = _score_batch(run_id, min(batch, limit - done))
        if n == 0:
            break
        done += n
        if progress is not None:
            progress(done)
    run = ShadowRun.objects.select_related("deployment__project", "candidate").filter(pk=run_id).first()
    if run is not None:
        shadow_run_compare(run=run, force=force_compare)
    return done


def shadow_run_score(*, job) -> dict:
    """The on-demand Job body."""
    run_id = job.params["run_id"]
    if not ShadowRun.objects.filter(pk=run_id).exists():
        raise NotFound("This shadow run no longer exists")

    def progress(n):
        job_progress(job=job, progress=50, message=f"Scored {n:,} logged requests")

    n = shadow_run_score_pending(run_id=run_id, progress=progress, force_compare=True)
    run = ShadowRun.objects.get(pk=run_id)
    return {"scored_now": n, "scored": run.scored, "verdict": (run.comparison.get("verdict") or {}).get("status")}


def shadow_tick() -> dict:
    """Beat: score and compare every active run."""
    totals = {}
    for run_id in ShadowRun.objects.filter(status=ShadowStatus.ACTIVE).values_list("pk", flat=True):
        try:
            totals[run_id] = shadow_run_score_pending(run_id=run_id)
        except Exception:  # noqa: BLE001 - one broken run must not starve the others
            logger.exception("Shadow tick failed for run %s", run_id)
    return {"runs": len(totals), "scored": sum(totals.values())}


# --- comparison ----------------------------------------------------------------------------------


def shadow_run_compare(*, run: ShadowRun, outcomes: dict | None = None, force: bool = True) -> dict:
    """Recompute and store the run's comparison. ``outcomes``: {request_id: label}; None = ask the source.

    With ``force=False`` (the beat tick) nothing is recomputed when neither the scored requests nor the
    known outcomes changed since the stored comparison.
    """
    limit = settings.SHADOW_COMPARE_MAX_ROWS
    candidate = run.candidate
    # Out-of-sample evidence only: requests answered after the candidate was registered. Whatever data
    # trained it (an upload, a training set, a retraining window of outcomes) existed before that, so
    # a backfill over the traffic whose outcomes trained it cannot flatter it.
    cutoff = candidate.created_at
    scored = ShadowPrediction.objects.filter(run=run)
    out_of_sample = scored.filter(created_at__gt=cutoff)
    preds = list(out_of_sample.order_by("-log_id")
                 .values_list("request_id", "production_output", "candidate_output", "production_score",
                              "candidate_score", "created_at")[:limit])
    preds.reverse()
    deployment = run.deployment
    policy = promotion_policy(deployment.project)
    task = candidate.model.task
    if outcomes is None:
        outcomes = outcome_labels_for_requests(deployment=deployment, request_ids=[p[0] for p in preds]) if preds else {}
    outcomes = {str(k): v for k, v in outcomes.items()}
    ids = [str(p[0]) for p in preds]
    mask = np.array([i in outcomes for i in ids], dtype=bool)
    previous = run.comparison or {}
    if not force and previous.get("n") == len(preds) and previous.get("labelled") == int(mask.sum()):
        return previous
    y_true = [outcomes.get(i) for i in ids]
    has_scores = bool(preds) and all(p[3] is not None and p[4] is not None for p in preds)
    result = shadow_stats.compare(
        task=task,
        production_output=[p[1] for p in preds], candidate_output=[p[2] for p in preds],
        production_score=[p[3] for p in preds] if has_scores else None,
        candidate_score=[p[4] for p in preds] if has_scores else None,
        y_true=y_true, labelled_mask=mask, classes=candidate.classes, positive=_positive_class(candidate),
        min_labelled=policy.min_labelled, alpha=policy.alpha, n_boot=settings.SHADOW_BOOTSTRAP_RESAMPLES,
        seed=run.pk or 0, metrics=policy.metrics_for(task), margin=policy.metric_margin)
    data = result.to_dict()
    data["seed"] = run.pk or 0
    data["capped"] = len(preds) >= limit
    data["window"] = {
        "cutoff": cutoff.isoformat(), "rule": f"requests answered after {candidate} was registered",
        "rows": len(preds), "labelled": int(mask.sum()),
        "excluded_in_sample": scored.filter(created_at__lte=cutoff).count(),
        "first": preds[0][5].isoformat() if preds else None, "last": preds[-1][5].isoformat() if preds else None}
    if data["verdict"]["status"] == "insufficient":
        data["verdict"]["message"] += (f" (out-of-sample only: {data['window']['rows']} requests after "
                                       f"{candidate} was registered; {data['window']['excluded_in_sample']} "
                                       "earlier ones not counted)")
    ShadowRun.objects.filter(pk=run.pk).update(comparison=data, compared_at=timezone.now())
    run.comparison = data
    return data

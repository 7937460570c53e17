"""Retraining policies: every write and rule. The beat task calls ``retraining_tick``.

A policy fires once per *episode*: an open alert of a trigger rule (``alert:<id>``), a streak of
monitoring windows breaching a metric trigger (``metric:<n>:<first window id>``) or a manual "retrain
now" (``manual:<uuid>``). Before firing it checks, in order: another firing still in flight, the
cooldown, the maximum frequency, the minimum number of new labelled rows and whether the deployment
can be retrained at all; a refusal is recorded on the episode's ``PolicyFiring`` as ``skipped`` with
the reason (re-checked on later ticks while the episode lasts, so labels arriving later still let it
fire — once).

Firing starts the chain, each step audited and appended to ``PolicyFiring.steps``:
training job (registry, refit of the production version on outcomes joined to the logged requests'
entities and times, point-in-time through the feature store) → the registry validates the new
version → a shadow run against production (deployments) → a promotion request with the evidence,
left open for a reviewer. A policy never promotes.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import polars as pl
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.common.errors import ApplicationError, Conflict, InvalidInput, PermissionDenied
from apps.deployments.models import Deployment, DeploymentStatus, InputMode, PredictionLog
from apps.monitoring.models import Alert, AlertRule, AlertStatus, Comparator, MonitoringWindow, Outcome
from apps.projects.models import JobStatus
from apps.projects.permissions import can
from apps.projects.services import audit_record
from apps.releases.models import ShadowRun
from apps.releases.policy import promotion_policy
from apps.releases.services.promotion import promotion_request_open
from apps.releases.services.shadow import shadow_run_start

from ..models import FiringStatus, PolicyFiring, RetrainingPolicy

log = logging.getLogger(__name__)

MAX_TRIGGERS = 10
# The ranges retraining_policy_save enforces (the API schema states the same, apps.training.api).
POLICY_LIMITS = {"cooldown_minutes": (0, 60 * 24 * 365), "max_firings": (1, 1000),
                 "max_firings_period_hours": (1, 24 * 365), "min_new_labels": (0, 100_000_000),
                 "training_window_days": (1, 3650), "holdout_fraction": (0.05, 0.5), "windows": (1, 100)}
LABEL_COLUMN = "label"
TIMESTAMP_COLUMN = "event_timestamp"
# The shadow run asks for a day of backfill, but a run never scores traffic from before the candidate's
# training-data cut-off (``shadow_run_start``): the retrained version was just registered, so its run scores
# only requests answered after that — never the window of outcomes that trained it.
SHADOW_BACKFILL_HOURS = 24.0


def _require(actor, deployment: Deployment, action: str) -> None:
    if not can(actor, deployment.project, action):
        raise PermissionDenied(f"Your role in {deployment.project.name} does not allow {action}")


# --- configuration ---------------------------------------------------------------------------------


def _int(value, *, field: str, label: str, low: int | None = None, high: int | None = None) -> int:
    if low is None:
        low, high = POLICY_LIMITS[field]
    try:
        value = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{label} must be a whole number", field=field) from exc
    if not low <= value <= high:
        raise InvalidInput(f"{label} must be between {low:,} and {high:,}", field=field)
    return value


def clean_triggers(*, deployment: Deployment, triggers) -> list[dict]:
    """Validate triggers: alert rules of this deployment, or metric conditions over N windows."""
    from apps.monitoring.services import _validate_metric

    if not isinstance(triggers, list) or not triggers:
        raise InvalidInput("Add at least one trigger (an alert rule or a metric condition)", field="triggers")
    if len(triggers) > MAX_TRIGGERS:
        raise InvalidInput(f"At most {MAX_TRIGGERS} triggers", field="triggers")
    out = []
    for i, t in enumerate(triggers, 1):
        kind = (t or {}).get("kind")
        if kind == "alert_rule":
            rule_id = t.get("rule_id")
            rule = (AlertRule.objects.filter(pk=rule_id, deployment=deployment).first()
                    if isinstance(rule_id, int) and not isinstance(rule_id, bool) and 0 < rule_id < 2**63 else None)
            if rule is None:
                raise InvalidInput(f"Trigger {i}: choose an alert rule of {deployment.slug}", field="triggers")
            out.append({"kind": "alert_rule", "rule_id": rule.pk})
        elif kind == "metric":
            metric = str(t.get("metric") or "").strip()
            try:
                _validate_metric(metric)
            except InvalidInput as exc:
                raise InvalidInput(f"Trigger {i}: {exc.message}", field="triggers") from exc
            if t.get("comparator") not in Comparator.values:
                raise InvalidInput(f"Trigger {i}: the comparator must be gt, gte, lt or lte", field="triggers")
            try:
                if isinstance(t.get("threshold"), bool):
                    raise TypeError("a boolean")
                threshold = float(t.get("threshold"))
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"Trigger {i}: the threshold must be a number", field="triggers") from exc
            windows = _int(t.get("windows", 1), field="triggers", low=POLICY_LIMITS["windows"][0],
                           high=POLICY_LIMITS["windows"][1], label=f"Trigger {i}: windows")
            out.append({"kind": "metric", "metric": metric, "comparator": t["comparator"], "threshold": threshold,
                        "windows": windows})
        else:
            raise InvalidInput(f"Trigger {i}: the kind must be alert_rule or metric", field="triggers")
    return out


def retraining_policy_save(*, deployment: Deployment, actor, triggers, enabled: bool = True,
                           cooldown_minutes: int = 24 * 60, max_firings: int = 2, max_firings_period_hours: int = 168,
                           min_new_labels: int = 500, training_window_days: int = 30,
                           holdout_fraction: float = 0.2, note: str = "") -> RetrainingPolicy:
    """Create or update the deployment's policy (one per deployment)."""
    _require(actor, deployment, "retraining.configure")
    values = {
        "triggers": clean_triggers(deployment=deployment, triggers=triggers),
        "enabled": bool(enabled),
        "cooldown_minutes": _int(cooldown_minutes, field="cooldown_minutes", label="The cooldown (minutes)"),
        "max_firings": _int(max_firings, field="max_firings", label="The maximum number of firings"),
        "max_firings_period_hours": _int(max_firings_period_hours, field="max_firings_period_hours",
                                         label="The frequency period (hours)"),
        "min_new_labels": _int(min_new_labels, field="min_new_labels", label="The minimum of new labelled rows"),
        "training_window_days": _int(training_window_days, field="training_window_days",
                                     label="The training window (days)"),
        "note": (note or "")[:300],
    }
    try:
        holdout_fraction = float(holdout_fraction)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("The holdout fraction must be a number", field="holdout_fraction") from exc
    if not POLICY_LIMITS["holdout_fraction"][0] <= holdout_fraction <= POLICY_LIMITS["holdout_fraction"][1]:
        raise InvalidInput("Hold out between 0.05 and 0.5 of the rows", field="holdout_fraction")
    values["holdout_fraction"] = holdout_fraction
    with transaction.atomic():
        policy = RetrainingPolicy.objects.select_for_update().filter(deployment=deployment).first()
        created = policy is None
        if created:
            try:
                with transaction.atomic():
                    policy = RetrainingPolicy.objects.create(deployment=deployment, created_by=actor, updated_by=actor,
                                                             **values)
            except IntegrityError as exc:
                raise Conflict("The policy was created at the same time by someone else; reload") from exc
            before = {}
        else:
            before = {k: getattr(policy, k) for k in values}
            for k, v in values.items():
                setattr(policy, k, v)
            policy.updated_by = actor
            policy.save()
        changed = {k: [before.get(k), v] for k, v in values.items() if before.get(k) != v}
        audit_record(actor=actor, verb="retraining.policy_create" if created else "retraining.policy_update",
                     project=deployment.project, target=policy, details={"deployment": deployment.slug,
                                                                         "changes": changed if not created else values})
    return policy


# --- labels ----------------------------------------------------------------------------------------


def outcome_labels(*, deployment: Deployment, since: datetime, until: datetime) -> tuple[pl.DataFrame, str]:
    """Outcomes joined to the logged requests' entity keys and times: (label frame, join key).

    One row per labelled prediction in [since, until): ``<join key>``, ``event_timestamp`` (the time
    the prediction was made — the feature store joins the features available then), ``label``.
    """
    fs = deployment.registered_model.feature_set
    if fs is None:
        raise InvalidInput(f"{deployment.registered_model.name} has no feature set: its training set cannot be "
                           "built through the feature store")
    join_keys = sorted({it.feature.view.entity.join_key for it in fs.ordered_items})
    if len(join_keys) != 1:
        raise InvalidInput(f"Feature set {fs.name} joins on {len(join_keys)} keys; outcome labels carry one "
                           "entity key per request")
    if deployment.input_mode != InputMode.ENTITY:
        raise InvalidInput(f"{deployment.slug} takes features inline, so its logged requests carry no entity key to "
                           "rebuild point-in-time features from; retrain it from a label file instead")
    outcomes = dict(Outcome.objects.filter(deployment=deployment, predicted_at__gte=since, predicted_at__lt=until)
                    .values_list("request_id", "label"))
    keys, times, labels = [], [], []
    ids = list(outcomes)
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        for rid, key, created in (PredictionLog.objects.filter(deployment=deployment, request_id__in=chunk)
                                  .exclude(entity_key__isnull=True).values_list("request_id", "entity_key",
                                                                                "created_at")):
            keys.append(str(key))
            times.append(created)
            labels.append(outcomes[rid])
    frame = pl.DataFrame({join_keys[0]: keys, TIMESTAMP_COLUMN: pl.Series(times, dtype=pl.Datetime("us", "UTC")),
                          LABEL_COLUMN: labels}, strict=False)
    # Two labelled rows for the same entity at the same instant (one batch): keep the last.
    frame = frame.unique(subset=[join_keys[0], TIMESTAMP_COLUMN], keep="last", maintain_order=True)
    return frame.sort(TIMESTAMP_COLUMN), join_keys[0]


def new_label_count(*, policy: RetrainingPolicy) -> tuple[int, int]:
    """Outcomes received since the last firing that trained (else since the production version began
    serving): (count, the newest outcome id)."""
    dep = policy.deployment
    qs = Outcome.objects.filter(deployment=dep)
    last = (policy.firings.exclude(training_job__isnull=True).order_by("-fired_at", "-id")
            .values_list("max_outcome_id", flat=True).first())
    if last:
        qs = qs.filter(id__gt=last)
    else:
        since = (dep.events.filter(version=dep.production_version).order_by("created_at")
                 .values_list("created_at", flat=True).first())
        if since is not None:
            qs = qs.filter(received_at__gte=since)
    agg = qs.aggregate(n=Max("id"))
    return qs.count(), int(agg["n"] or 0)


# --- evaluation ------------------------------------------------------------------------------------


def _metric_episode(deployment: Deployment, index: int, trigger: dict) -> tuple[str, str] | None:
    from apps.monitoring.services import COMPARE, window_metric

    n = trigger["windows"]
    windows = list(MonitoringWindow.objects.filter(deployment=deployment).prefetch_related("features")
                   .order_by("-end", "-id")[:200])
    check = COMPARE[trigger["comparator"]]
    streak = []
    for w in windows:
        v = window_metric(w, trigger["metric"])
        if v is None:
            continue
        if not check(v, trigger["threshold"]):
            break
        streak.append((w, v))
    if len(streak) < n:
        return None
    first = streak[-1][0]
    latest = streak[0][1]
    label = Comparator(trigger["comparator"]).label
    return (f"metric:{index}:{first.pk}",
            f"{trigger['metric']} = {latest:.4g} {label} {trigger['threshold']:g} for {len(streak)} window(s) "
            f"in a row (trigger needs {n}) since {first.start:%Y-%m-%d %H:%M} UTC")


def _episodes(policy: RetrainingPolicy) -> list[dict]:
    """The trigger episodes active now."""
    dep = policy.deployment
    out = []
    for i, t in enumerate(policy.triggers or []):
        if t.get("kind") == "alert_rule":
            alert = (Alert.objects.select_related("rule").filter(
                rule_id=t.get("rule_id"), deployment=dep, status__in=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED])
                .first())
            if alert is not None:
                out.append({"trigger": "alert_rule", "key": f"alert:{alert.pk}", "alert": alert,
                            "reason": f"Alert #{alert.pk} is open: {alert.message}"})
        elif t.get("kind") == "metric":
            ep = _metric_episode(dep, i, t)
            if ep is not None:
                out.append({"trigger": "metric", "key": ep[0], "alert": None, "reason": ep[1]})
    return out


def _why_not(policy: RetrainingPolicy, now: datetime, *, new_labels: int) -> str | None:
    dep = policy.deployment
    inflight = policy.firings.filter(status__in=PolicyFiring.IN_FLIGHT).first()
    if inflight is not None:
        return f"a retraining of this policy is still in progress (firing #{inflight.pk}, {inflight.get_status_display().lower()})"
    fired = policy.firings.exclude(training_job__isnull=True)
    last = fired.order_by("-fired_at").values_list("fired_at", flat=True).first()
    if last and now < last + timedelta(minutes=policy.cooldown_minutes):
        until = last + timedelta(minutes=policy.cooldown_minutes)
        return f"the cooldown after the last firing ({last:%Y-%m-%d %H:%M} UTC) lasts until {until:%Y-%m-%d %H:%M} UTC"
    period_start = now - timedelta(hours=policy.max_firings_period_hours)
    recent = fired.filter(fired_at__gte=period_start).count()
    if recent >= policy.max_firings:
        return (f"the policy already fired {recent} time(s) in the last {policy.max_firings_period_hours} h "
                f"(maximum {policy.max_firings})")
    if new_labels < policy.min_new_labels:
        return (f"only {new_labels:,} new labelled row(s) arrived since the last retraining; the policy needs at "
                f"least {policy.min_new_labels:,}")
    if dep.input_mode != InputMode.ENTITY:
        return (f"{dep.slug} takes features inline, so its logged requests carry no entity keys to rebuild "
                "point-in-time training data from")
    if dep.registered_model.feature_set_id is None:
        return f"{dep.registered_model.name} has no feature set"
    return None


def _step(firing: PolicyFiring, step: str, message: str, *, actor=None, details: dict | None = None) -> None:
    firing.steps = [*(firing.steps or []), {"at": timezone.now().isoformat(), "step": step, "message": message[:500]}]
    audit_record(actor=actor, verb=f"retraining.{step}", project=firing.policy.deployment.project, target=firing,
                 target_label=f"retraining of {firing.policy.deployment.slug} ({firing.episode_key})"[:200],
                 details={"firing": firing.pk, "message": message[:500], **(details or {})})


def _acting_user(policy: RetrainingPolicy):
    """Automatic firings act for the deployment's owner, else the policy's last editor or creator."""
    dep = policy.deployment
    for user in (dep.owner, policy.updated_by, policy.created_by):
        if user is not None and user.is_active and can(user, dep.project, "training.run"):
            return user
    return None


def retraining_fire(*, policy: RetrainingPolicy, trigger: str, episode_key: str, reason: str, alert=None,
                    actor=None, now: datetime | None = None) -> PolicyFiring:
    """Fire the episode unless a guard says no (then record why). At most once per episode."""
    from .jobs import training_job_create

    now = now or timezone.now()
    with transaction.atomic():
        policy = RetrainingPolicy.objects.select_for_update(of=("self",)).select_related(
            "deployment__project", "deployment__registered_model", "deployment__production_version",
            "deployment__owner").get(pk=policy.pk)
        firing = PolicyFiring.objects.select_for_update().filter(policy=policy, episode_key=episode_key).first()
        if firing is not None and firing.status != FiringStatus.SKIPPED:
            return firing  # this episode already fired
        new_labels, max_id = new_label_count(policy=policy)
        why = _why_not(policy, now, new_labels=new_labels)
        user = actor or _acting_user(policy)
        if why is None and user is None:
            why = "no one who may run training jobs owns this deployment or the policy"
        if firing is None:
            firing = PolicyFiring.objects.create(policy=policy, trigger=trigger, episode_key=episode_key,
                                                 reason=reason[:500], status=FiringStatus.SKIPPED, alert=alert,
                                                 new_labels=new_labels, actor=actor)
            first_check = True
        else:
            first_check = False
            firing.checks += 1
        if why is not None:
            changed = firing.outcome != f"Did not fire: {why}"
            firing.outcome = f"Did not fire: {why}"
            firing.new_labels = new_labels
            if first_check or changed:
                _step(firing, "skip", f"Did not fire: {why}", actor=actor, details={"reason": reason[:300]})
            firing.save()
            return firing
        since = now - timedelta(days=policy.training_window_days)
        firing.status, firing.fired_at, firing.new_labels, firing.max_outcome_id = (
            FiringStatus.TRAINING, now, new_labels, max_id)
        firing.outcome = ""
        _step(firing, "fire", f"Fired: {reason}", actor=actor,
              details={"trigger": trigger, "new_labels": new_labels, "acting_for": user.username})
        dep = policy.deployment
        try:
            with transaction.atomic():
                labels, _key = outcome_labels(deployment=dep, since=since, until=now)
                if labels.height == 0:
                    raise InvalidInput(f"No outcomes of {dep.slug} join to logged requests with entity keys between "
                                       f"{since:%Y-%m-%d} and {now:%Y-%m-%d}")
                tj = training_job_create(
                    model=dep.registered_model, actor=user, parent_version=dep.production_version, labels=labels,
                    label_source="outcomes", timestamp_column=TIMESTAMP_COLUMN, label_column=LABEL_COLUMN,
                    label_source_detail=f"outcomes of {dep.slug}, {since:%Y-%m-%d %H:%M} – {now:%Y-%m-%d %H:%M} UTC",
                    window_start=since, window_end=now, holdout_fraction=policy.holdout_fraction,
                    trigger="policy", note=f"{dep.slug}: {reason}"[:300], idempotency_key=f"firing-{firing.pk}")
        except ApplicationError as exc:
            firing.status, firing.outcome = FiringStatus.FAILED, f"Could not start the training job: {exc.message}"
            _step(firing, "fail", firing.outcome, actor=actor)
            firing.save()
            return firing
        firing.training_job, firing.label_rows = tj, labels.height
        _step(firing, "train", f"Training job #{tj.pk} queued: refit of {dep.production_version} on "
                               f"{labels.height:,} outcome labels", actor=actor, details={"training_job": tj.pk})
        firing.save()
    return firing


def retraining_retrain_now(*, policy: RetrainingPolicy, actor, reason: str = "",
                           now: datetime | None = None) -> PolicyFiring:
    """A person's "retrain now": the same path and guards as an automatic firing."""
    _require(actor, policy.deployment, "retraining.configure")
    if not can(actor, policy.deployment.project, "training.run"):
        raise PermissionDenied("Your role does not allow starting training jobs")
    text = f"Retrain now by {actor.username}" + (f": {reason.strip()[:200]}" if reason and reason.strip() else "")
    return retraining_fire(policy=policy, trigger="manual", episode_key=f"manual:{uuid.uuid4().hex}",
                           reason=text, actor=actor, now=now)


def retraining_evaluate(*, policy: RetrainingPolicy, now: datetime | None = None) -> list[PolicyFiring]:
    now = now or timezone.now()
    out = []
    for ep in _episodes(policy):
        out.append(retraining_fire(policy=policy, trigger=ep["trigger"], episode_key=ep["key"], reason=ep["reason"],
                                   alert=ep["alert"], now=now))
    return out


# --- the chain -------------------------------------------------------------------------------------


def retraining_advance(*, firing: PolicyFiring) -> PolicyFiring:
    """Move an in-flight firing one step along the chain when its current step has finished."""
    with transaction.atomic():
        firing = (PolicyFiring.objects.select_for_update(of=("self",))
                  .select_related("policy__deployment__project", "training_job__job", "version").get(pk=firing.pk))
        if firing.status == FiringStatus.TRAINING:
            _advance_training(firing)
        elif firing.status == FiringStatus.VALIDATING:
            _advance_validating(firing)
        elif firing.status == FiringStatus.SHADOW:
            _advance_shadow(firing)
        elif firing.status == FiringStatus.AWAITING_REVIEW:
            _advance_review(firing)
        firing.save()
    return firing


def _advance_review(firing: PolicyFiring) -> None:
    """A firing ends in the terminal state that matches its promotion request's decision."""
    from apps.releases.models import PromotionRequest, PromotionStatus

    req = PromotionRequest.objects.filter(pk=firing.promotion_request_id).first()
    if req is None:
        firing.status, firing.outcome = FiringStatus.FAILED, "The promotion request was deleted"
        _step(firing, "fail", firing.outcome)
        return
    if req.status == PromotionStatus.OPEN:
        return
    comment = f": {req.decision_comment}" if req.decision_comment else ""
    if req.status == PromotionStatus.PROMOTED:
        firing.status = FiringStatus.PROMOTED
        firing.outcome = f"Promotion request #{req.pk} was approved: {firing.version} went to production{comment}"
    elif req.status == PromotionStatus.REJECTED:
        firing.status = FiringStatus.REJECTED
        firing.outcome = f"Promotion request #{req.pk} was rejected{comment}"
    else:
        firing.status = FiringStatus.STOPPED
        firing.outcome = f"Promotion request #{req.pk} was {req.get_status_display().lower()}{comment}"
    _step(firing, "decided", firing.outcome, details={"promotion_request": req.pk, "decision": req.status})


def _advance_training(firing: PolicyFiring) -> None:
    tj = firing.training_job
    job = tj.job if tj else None
    if job is None or not job.is_final:
        return
    tj.refresh_from_db()
    if job.status == JobStatus.SUCCEEDED and tj.result_version_id:
        firing.version_id = tj.result_version_id
        firing.status = FiringStatus.VALIDATING
        _step(firing, "registered", f"Training job #{tj.pk} registered {tj.result_version}; the registry is "
                                    "validating it", details={"version_id": tj.result_version_id,
                                                              "metrics": tj.metrics})
    else:
        firing.status = FiringStatus.FAILED
        firing.outcome = f"Training job #{tj.pk} {job.status}: {job.error or job.message}"
        _step(firing, "fail", firing.outcome)


def _advance_validating(firing: PolicyFiring) -> None:
    from apps.registry.models import VersionStatus

    version = firing.version
    version.refresh_from_db()
    if version.status == VersionStatus.VALIDATING:
        return
    if version.status != VersionStatus.READY:
        firing.status = FiringStatus.FAILED
        firing.outcome = f"The registry rejected {version}: {version.status_reason}"
        _step(firing, "fail", firing.outcome)
        return
    _step(firing, "validated", f"{version} passed the registry's validation", details={"metrics": version.metrics})
    dep = firing.policy.deployment
    actor = firing.actor or _acting_user(firing.policy)
    try:
        with transaction.atomic():
            run = shadow_run_start(deployment=dep, actor=actor, candidate=version,
                        backfill_hours=SHADOW_BACKFILL_HOURS)
    except ApplicationError as exc:
        firing.status, firing.outcome = FiringStatus.FAILED, f"Could not start the shadow run: {exc.message}"
        _step(firing, "fail", firing.outcome)
        return
    firing.shadow_run_id = run.pk
    firing.status = FiringStatus.SHADOW
    firing.outcome = f"Shadow run #{run.pk} is collecting evidence"
    _step(firing, "shadow", f"Shadow run #{run.pk} started: {version} scores production traffic next to "
                            f"{dep.production_version}", details={"shadow_run": run.pk})


def _justification(firing: PolicyFiring) -> str:
    tj = firing.training_job
    m = (tj.metrics or {}) if tj else {}
    cand, par = m.get("candidate") or {}, m.get("parent") or {}
    lines = [f"Opened by the retraining policy of {firing.policy.deployment.slug} (firing #{firing.pk}).",
             f"Why it fired: {firing.reason}",
             f"New labelled rows since the last retraining: {firing.new_labels:,}; labels used: {firing.label_rows:,}."]
    if tj:
        lines.append(f"Training job #{tj.pk}: fresh fit of v{m.get('parent_version')} on {m.get('n_train', 0):,} rows "
                     f"(point-in-time training set {m.get('training_set')}), holdout {m.get('n_holdout', 0):,} rows "
                     f"from {str(m.get('split_time', ''))[:16]} UTC.")
        shared = [k for k in cand if k != "n" and k in par]
        if shared:
            lines.append("Holdout, candidate vs parent: " + ", ".join(
                f"{k} {cand[k]:.4f} vs {par[k]:.4f}" for k in shared))
    lines.append("The policy never promotes: a reviewer decides.")
    return "\n".join(lines)


def _advance_shadow(firing: PolicyFiring) -> None:
    run = ShadowRun.objects.filter(pk=firing.shadow_run_id).select_related("deployment__project").first()
    if run is None:
        firing.status, firing.outcome = FiringStatus.FAILED, "The shadow run was deleted"
        _step(firing, "fail", firing.outcome)
        return
    needed = promotion_policy(run.deployment.project).min_shadow_requests
    if run.scored < needed and run.is_paused:
        firing.outcome = (f"Shadow run #{run.pk} is paused (emergency rollback) at {run.scored:,} of the {needed:,} "
                          "requests the promotion policy asks for; it waits until the run is resumed")
        return
    if run.scored < needed and run.is_active:
        firing.outcome = (f"Shadow run #{run.pk} has scored {run.scored:,} of the {needed:,} requests the promotion "
                          "policy asks for; the promotion request opens when it has")
        return
    actor = firing.actor or _acting_user(firing.policy)
    try:
        with transaction.atomic():
            req = promotion_request_open(deployment=run.deployment, actor=actor, candidate=firing.version,
                               justification=_justification(firing))
    except ApplicationError as exc:
        firing.status, firing.outcome = FiringStatus.FAILED, f"Could not open the promotion request: {exc.message}"
        _step(firing, "fail", firing.outcome)
        return
    firing.promotion_request_id = req.pk
    firing.status = FiringStatus.AWAITING_REVIEW
    firing.outcome = (f"Promotion request #{req.pk} is open and waits for a reviewer "
                      f"(gates {'passed' if req.gates_passed else 'not all passed'})")
    _step(firing, "promotion", firing.outcome, details={"promotion_request": req.pk, "shadow_run": run.pk,
                                                        "scored": run.scored, "gates_passed": req.gates_passed})


# --- the tick ------------------------------------------------------------------------------------


def retraining_tick(*, now: datetime | None = None) -> dict:
    """Beat: evaluate every enabled policy of a live deployment, then advance in-flight firings."""
    now = now or timezone.now()
    evaluated = advanced = 0
    for policy in RetrainingPolicy.objects.filter(enabled=True, deployment__status=DeploymentStatus.LIVE).select_related(
            "deployment"):
        try:
            retraining_evaluate(policy=policy, now=now)
            evaluated += 1
        except Exception:  # noqa: BLE001 - one broken policy must not stop the others
            log.exception("retraining evaluation failed for policy %s", policy.pk)
    for firing in PolicyFiring.objects.filter(status__in=(*PolicyFiring.IN_FLIGHT, FiringStatus.AWAITING_REVIEW)):
        try:
            retraining_advance(firing=firing)
            advanced += 1
        except Exception:  # noqa: BLE001
            log.exception("retraining chain step failed for firing %s", firing.pk)
    return {"evaluated": evaluated, "advanced": advanced}

"""Promotion requests, reviews, promotion and rollback: every write and rule of approval-gated promotion.

Rules (each enforced here, so the pages and the API cannot differ):

- A request freezes its evidence (offline metrics vs production, shadow comparison, lineage, validation
  report, gates) into JSON with a sha256 ``evidence_hash``, and binds the candidate's ``artifact_sha256``.
- The requester never reviews their own request. An approval must carry the evidence hash and artifact
  sha256 the reviewer read; if either changed since, it is refused (and older approvals stop counting
  when the evidence is refreshed). Approving with a failing gate needs an explicit override reason.
- The last required approval promotes in the same transaction, under a row lock on the request: two
  reviewers approving at once promote once. Production switches through the serving app's
  ``deployment_version_set`` (timeline event + serving generation bump, so every process switches).
- Rollback: one action of the deployment's owner, immediate and audited.
- Emails: reviewers when a request opens, the requester on the decision (sent after commit).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.common.errors import Conflict, InvalidInput, PermissionDenied
from apps.deployments.models import Canary, Deployment, DeploymentEvent
from apps.deployments.services import deployment_never_live
from apps.monitoring.selectors import open_critical_alert_messages
from apps.projects.models import Membership, Project
from apps.projects.permissions import ACTIONS, can
from apps.projects.services import audit_record, project_settings_update

from ..models import (
    PromotionRequest,
    PromotionReview,
    PromotionStatus,
    ReviewDecision,
    ShadowRun,
    ShadowStatus,
)
from ..policy import LIMITS, PromotionPolicy, promotion_policy

logger = logging.getLogger("slipway.deployments.promotion")

HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "f1": True, "precision": True, "recall": True, "r2": True,
                    "rmse": False, "mae": False, "log_loss": False}


def _require(user, project: Project, action: str) -> None:
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")


# --- policy --------------------------------------------------------------------------------------


def promotion_policy_update(*, project: Project, actor, values: dict) -> PromotionPolicy:
    """Change gate thresholds / approvals required (project owners; audited by project_settings_update)."""
    current = promotion_policy(project).to_dict()
    clean = {}
    for key, value in values.items():
        if key not in current:
            raise InvalidInput(f"Unknown promotion setting {key!r}", field=key)
        if isinstance(current[key], bool):
            clean[key] = bool(value)
            continue
        if key == "primary_metrics":
            clean[key] = _clean_metrics(value)
            continue
        try:
            number = type(current[key])(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{key} must be a number", field=key) from exc
        lo, hi = LIMITS[key]
        if not (lo <= number <= hi) or (isinstance(number, float) and not math.isfinite(number)):
            raise InvalidInput(f"{key} must be between {lo} and {hi}", field=key)
        clean[key] = number
    project = project_settings_update(project=project, actor=actor, values={"promotion": {**current, **clean}})
    return promotion_policy(project)


def _clean_metrics(value) -> str:
    from apps.releases.shadow_stats import PRIMARY_METRICS

    names = [m.strip() for m in (value.split(",") if isinstance(value, str) else list(value or [])) if str(m).strip()]
    unknown = [m for m in names if m not in PRIMARY_METRICS]
    if unknown:
        raise InvalidInput(f"Unknown primary metric {unknown[0]!r}: choose from {', '.join(PRIMARY_METRICS)}",
                           field="primary_metrics")
    return ",".join(dict.fromkeys(names))


# --- first versions ------------------------------------------------------------------------------


def promotion_required_for_first_version(project: Project) -> bool:
    """Once a project uses promotion requests, a first version goes live only through one (or an owner override)."""
    return PromotionRequest.objects.filter(project=project).exists()


def first_version_go_live_check(*, project: Project, actor, override_reason: str = "") -> str:
    """Called by the serving services before a never-live deployment goes live (created live / first resume).

    No unreviewed first release: from a project's very first deployment on, a first version goes live only
    through an approved promotion request — or an owner's explicit override with a reason (recorded in the
    audit log), which the project's policy can switch off (``first_version_owner_override``). Returns the
    override reason to record. Raises Conflict (a refusal the pages show on the form) otherwise.
    """
    override_reason = (override_reason or "").strip()
    policy = promotion_policy(project)
    if override_reason and policy.first_version_owner_override and can(actor, project, "project.edit"):
        return override_reason[:400]
    if override_reason and not policy.first_version_owner_override:
        raise Conflict(f"{project.name}'s policy does not allow owner overrides: open a promotion request for "
                       "the first version", field="go_live")
    raise Conflict("A first version goes live only through an approved promotion request: create the deployment "
                   "paused, then open a promotion request for its first version"
                   + (" (or, as a project owner, give an override reason)" if policy.first_version_owner_override
                      else ""), field="go_live")


def version_switch_check(*, project: Project) -> None:
    """Direct production switches (not promotion, not rollback) are refused once promotion requests exist."""
    if promotion_required_for_first_version(project):
        raise Conflict("This project promotes through approved requests: open a promotion request for that "
                       "version (rollback is on the deployment's Releases page)", field="version")


# --- evidence ------------------------------------------------------------------------------------


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def evidence_hash(evidence: dict) -> str:
    return hashlib.sha256(_canonical(evidence).encode()).hexdigest()


def _version_info(version) -> dict:
    return {"id": version.pk, "label": str(version), "version": version.version, "status": version.status,
            "artifact_sha256": version.artifact_sha256, "metrics": version.metrics or {},
            "created_at": version.created_at.isoformat() if version.created_at else None,
            "created_by": version.created_by.username if version.created_by_id else None}


def _lineage(version) -> dict:
    ts = version.training_set
    fs = version.model.feature_set
    return {
        "training_set": str(ts) if ts is not None else None,
        "training_set_id": version.training_set_id,
        "feature_set": str(fs) if fs is not None else None,
        "feature_set_id": version.model.feature_set_id,
        "parent": str(version.parent) if version.parent_id else None,
        "parent_id": version.parent_id,
        "training_data": version.training_data_name or None,
        "training_data_sha256": version.training_data_sha256 or None,
        "code_ref": version.code_ref or None,
        "framework": version.framework or None,
    }


def _offline(candidate, production) -> list[dict]:
    rows = []
    for key in sorted(set(candidate.metrics or {}) & set(production.metrics or {})):
        if key not in HIGHER_IS_BETTER:
            continue
        c, p = candidate.metrics[key], production.metrics[key]
        if not isinstance(c, (int, float)) or not isinstance(p, (int, float)):
            continue
        rows.append({"metric": key, "production": p, "candidate": c, "difference": c - p,
                     "higher_is_better": HIGHER_IS_BETTER[key]})
    return rows


def _gate(key: str, name: str, passed: bool, detail: str) -> dict:
    return {"key": key, "name": name, "passed": bool(passed), "detail": detail}


def _not_worse_gate(task: str, comparison: dict, offline: list[dict], policy: PromotionPolicy) -> dict:
    tol = policy.tolerance
    verdict = (comparison or {}).get("verdict") or {}
    tests = (comparison or {}).get("metrics") or []
    labelled = (comparison or {}).get("labelled", 0)
    worse = [m for m in tests if m.get("significantly_worse")]
    if worse and labelled >= policy.min_labelled:
        return _gate("not_worse", "Not worse than production", False,
                     "Significantly worse on a primary metric: " + "; ".join(m["detail"] for m in worse))
    if verdict.get("status") == "worse":
        return _gate("not_worse", "Not worse than production", False, f"Shadow verdict: {verdict.get('message')}")
    gate = _not_worse_point_gate(task, comparison, offline, policy, tol)
    if tests and labelled >= policy.min_labelled:
        gate["detail"] += ". Primary metrics: " + "; ".join(m["detail"] for m in tests)
    return gate


def _not_worse_point_gate(task: str, comparison: dict, offline: list[dict], policy: PromotionPolicy,
                          tol: float) -> dict:
    mc = (comparison or {}).get("mcnemar")
    labelled = (comparison or {}).get("labelled", 0)
    if task != "regression" and mc and labelled >= policy.min_labelled:
        c, p = mc.get("candidate_accuracy"), mc.get("production_accuracy")
        if c is not None and p is not None:
            return _gate("not_worse", "Not worse than production", c >= p - tol,
                         f"Shadow accuracy on {labelled} requests with outcomes: candidate {c:.4f} vs production "
                         f"{p:.4f} (tolerance {tol})")
    bs = (comparison or {}).get("bootstrap")
    if task == "regression" and bs and labelled >= policy.min_labelled and bs.get("difference") is not None:
        return _gate("not_worse", "Not worse than production", bs["difference"] <= tol,
                     f"Shadow RMSE difference {bs['difference']:+.4g} on {labelled} requests (tolerance {tol})")
    primary = "rmse" if task == "regression" else "accuracy"
    row = next((r for r in offline if r["metric"] == primary), None)
    if row is None:
        return _gate("not_worse", "Not worse than production", False,
                     f"No {primary} to compare: no shadow outcomes and no offline {primary} for both versions")
    ok = row["difference"] >= -tol if row["higher_is_better"] else row["difference"] <= tol
    return _gate("not_worse", "Not worse than production", ok,
                 f"Offline {primary} (holdout): candidate {row['candidate']:.4f} vs production "
                 f"{row['production']:.4f} (tolerance {tol}; not enough shadow outcomes yet)")


def _latest_shadow_run(deployment: Deployment, candidate) -> ShadowRun | None:
    return (ShadowRun.objects.filter(deployment=deployment, candidate=candidate)
            .order_by("-scored", "-started_at").first())


def evidence_build(*, deployment: Deployment, candidate) -> tuple[dict, ShadowRun | None]:
    """The evidence of promoting ``candidate`` on ``deployment`` now (JSON-ready), with its gates."""
    from apps.registry.models import VersionStatus

    policy = promotion_policy(deployment.project)
    production = deployment.production_version
    first = candidate.pk == production.pk and deployment_never_live(deployment)
    run = _latest_shadow_run(deployment, candidate)
    comparison = run.comparison if run is not None else {}
    offline = _offline(candidate, production)
    report = candidate.validation_report or {}
    gates = [
        _gate("validated", "Validated", candidate.status == VersionStatus.READY and report.get("result") == "ready",
              f"{candidate} is {candidate.status}" + (f"; validation result: {report.get('result')}"
                                                       if report.get("result") else "")),
        _gate("shadowed", f"Shadowed on at least {policy.min_shadow_requests} requests",
              first or (run is not None and run.scored >= policy.min_shadow_requests),
              "First version of this deployment: there is no production traffic to shadow" if first
              else f"{run.scored if run else 0} logged requests scored in shadow"),
        _gate("not_worse", "Not worse than production", True,
              "First version of this deployment: nothing to compare with") if first
        else _not_worse_gate(candidate.model.task, comparison, offline, policy),
    ]
    alerts = open_critical_alert_messages(deployment=deployment)
    gates.append(_gate("no_critical_alert", "No open critical alert", not alerts,
                       "; ".join(alerts[:5]) if alerts else "No open critical alert on this deployment"))
    evidence = {
        "deployment": {"id": deployment.pk, "slug": deployment.slug},
        "production": _version_info(production),
        "candidate": _version_info(candidate),
        "offline": offline,
        "lineage": {"candidate": _lineage(candidate), "production": _lineage(production)},
        "validation_report": report,
        "shadow": ({"run_id": run.pk, "status": run.status, "scored": run.scored, "failed": run.failed,
                    "since": run.since.isoformat(), "comparison": comparison} if run else None),
        "policy": policy.to_dict(),
        "first_version": first,
        "gates": gates,
    }
    return evidence, run


# --- requests ------------------------------------------------------------------------------------


def _reviewers(project: Project, exclude_user_id: int) -> list:
    roles = ACTIONS["promotion.review"]
    return [m.user for m in Membership.objects.filter(project=project, role__in=roles).select_related("user")
            if m.user_id != exclude_user_id and m.user.is_active and m.user.email]


def _url(req: PromotionRequest) -> str:
    try:
        path = reverse("releases:request-detail", kwargs={"project": req.project.slug, "pk": req.pk})
    except NoReverseMatch:  # pages not mounted (e.g. an API-only deployment of the portal)
        path = f"/projects/{req.project.slug}/promotions/{req.pk}/"
    return settings.SLIPWAY_BASE_URL.rstrip("/") + path


def _mail(subject: str, body: str, recipients: list[str]) -> None:
    if not recipients:
        return
    try:
        send_mail(subject, body, None, recipients)
    except Exception:  # noqa: BLE001 - a mail outage must not undo a decision that is already committed
        logger.exception("Promotion email failed: %s", subject)


def _notify_open(req: PromotionRequest) -> None:
    reviewers = _reviewers(req.project, req.requested_by_id)
    gates = "\n".join(f"  [{'pass' if g['passed'] else 'FAIL'}] {g['name']}: {g['detail']}"
                      for g in req.evidence.get("gates", []))
    _mail(f"[Slipway] Review requested: {req.candidate} on {req.deployment.slug}",
          f"{req.requested_by.username} asks to promote {req.candidate} to production on {req.deployment.slug} "
          f"(now {req.production_version}).\n\nJustification:\n{req.justification}\n\nGates:\n{gates}\n\n"
          f"Read the evidence and decide: {_url(req)}\n",
          [u.email for u in reviewers])


def _notify_decision(req: PromotionRequest) -> None:
    if not req.requested_by.email:
        return
    word = {"promoted": "approved and promoted", "rejected": "rejected"}.get(req.status, req.status)
    _mail(f"[Slipway] Your promotion request was {word}: {req.candidate} on {req.deployment.slug}",
          f"{req.decided_by.username if req.decided_by else 'A reviewer'} {word} your request to promote "
          f"{req.candidate} on {req.deployment.slug}.\n\nComment:\n{req.decision_comment}\n\n{_url(req)}\n",
          [req.requested_by.email])


def promotion_request_open(*, deployment: Deployment, actor, candidate, justification: str) -> PromotionRequest:
    from .shadow import _candidate_check

    project = deployment.project
    _require(actor, project, "promotion.request")
    _candidate_check(deployment, candidate, allow_production=deployment_never_live(deployment))
    justification = (justification or "").strip()
    if not justification:
        raise InvalidInput("Explain why this version should go to production", field="justification")
    if len(justification) > 5000:
        raise InvalidInput("The justification must be at most 5000 characters", field="justification")
    evidence, run = evidence_build(deployment=deployment, candidate=candidate)
    policy = promotion_policy(project)
    try:
        with transaction.atomic():
            req = PromotionRequest.objects.create(
                project=project, deployment=deployment, candidate=candidate,
                production_version=deployment.production_version, shadow_run=run, justification=justification,
                artifact_sha256=candidate.artifact_sha256, evidence=evidence, evidence_hash=evidence_hash(evidence),
                evidence_at=timezone.now(), gates_passed=all(g["passed"] for g in evidence["gates"]),
                approvals_required=policy.approvals_required, requested_by=actor)
            audit_record(actor=actor, verb="promotion.request", project=project, target=req,
                         target_label=f"{deployment.slug}: {candidate}",
                         details={"candidate": str(candidate), "production": str(deployment.production_version),
                                  "gates_passed": req.gates_passed, "evidence_hash": req.evidence_hash,
                                  "artifact_sha256": req.artifact_sha256})
            transaction.on_commit(lambda: _notify_open(req))
    except IntegrityError as exc:
        raise Conflict(f"An open promotion request for {candidate} on {deployment.slug} exists already",
                       field="candidate") from exc
    return req


def _locked(req: PromotionRequest) -> PromotionRequest:
    return (PromotionRequest.objects.select_for_update(of=("self",))
            .select_related("project", "deployment", "candidate", "requested_by").get(pk=req.pk))


def promotion_request_refresh(*, request: PromotionRequest, actor) -> PromotionRequest:
    """Re-freeze the evidence now (the hash changes: earlier approvals stop counting)."""
    _require(actor, request.project, "promotion.request")
    with transaction.atomic():
        req = _locked(request)
        if not req.is_open:
            raise Conflict(f"This request is {req.get_status_display().lower()}: its evidence is final")
        deployment = Deployment.objects.select_related("project", "production_version").get(pk=req.deployment_id)
        evidence, run = evidence_build(deployment=deployment, candidate=req.candidate)
        before = req.evidence_hash
        req.evidence, req.evidence_hash, req.evidence_at = evidence, evidence_hash(evidence), timezone.now()
        req.shadow_run, req.gates_passed = run, all(g["passed"] for g in evidence["gates"])
        req.production_version = deployment.production_version
        req.artifact_sha256 = req.candidate.artifact_sha256
        req.approvals_required = promotion_policy(req.project).approvals_required
        req.save(update_fields=["evidence", "evidence_hash", "evidence_at", "shadow_run", "gates_passed",
                                "production_version", "artifact_sha256", "approvals_required"])
        audit_record(actor=actor, verb="promotion.refresh", project=req.project, target=req,
                     details={"before": before, "after": req.evidence_hash, "gates_passed": req.gates_passed})
    return req


def promotion_request_withdraw(*, request: PromotionRequest, actor) -> PromotionRequest:
    with transaction.atomic():
        req = _locked(request)
        if req.requested_by_id != actor.pk and not can(actor, req.project, "project.edit"):
            raise PermissionDenied("Only the requester (or a project owner) may withdraw this request")
        if not req.is_open:
            raise Conflict(f"This request is {req.get_status_display().lower()} already")
        req.status, req.decided_at, req.decided_by = PromotionStatus.WITHDRAWN, timezone.now(), actor
        req.save(update_fields=["status", "decided_at", "decided_by"])
        audit_record(actor=actor, verb="promotion.withdraw", project=req.project, target=req)
    return req


def _stored_sha256(version) -> str | None:
    """sha256 of the artifact bytes as stored now (None when missing)."""
    from apps.common.storage import artifact_store

    store = artifact_store()
    if not version.artifact_key or not store.exists(version.artifact_key):
        return None
    digest = hashlib.sha256()
    with store.open(version.artifact_key) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def failing_gates(req: PromotionRequest) -> list[dict]:
    return [g for g in (req.evidence or {}).get("gates", []) if not g.get("passed")]


def counting_approvals(req: PromotionRequest):
    """Approvals that count now: distinct reviewers, not the requester, bound to the current evidence and
    artifact."""
    return (req.reviews.filter(decision=ReviewDecision.APPROVE, evidence_hash=req.evidence_hash,
                               artifact_sha256=req.artifact_sha256)
            .exclude(reviewer_id=req.requested_by_id).select_related("reviewer"))


def promotion_request_review(*, request: PromotionRequest, reviewer, decision: str, comment: str,
                             evidence_hash: str, artifact_sha256: str, override_reason: str = "") -> PromotionReview:
    """Approve or reject. ``evidence_hash``/``artifact_sha256``: what the reviewer read (from the page/API)."""
    from apps.deployments.services import deployment_resume, deployment_version_set
    from apps.registry.models import ModelVersion

    project = request.project
    _require(reviewer, project, "promotion.review")
    if decision not in ReviewDecision.values:
        raise InvalidInput("The decision must be approve or reject", field="decision")
    if request.requested_by_id == reviewer.pk:
        raise PermissionDenied("You opened this request: someone else must review it")
    comment = (comment or "").strip()
    override_reason = (override_reason or "").strip()
    if not comment:
        raise InvalidInput("Say why (the comment is part of the record)", field="comment")
    if len(comment) > 5000 or len(override_reason) > 5000:
        raise InvalidInput("Comments are limited to 5000 characters", field="comment")
    with transaction.atomic():
        req = _locked(request)
        if not req.is_open:
            raise Conflict(f"This request is {req.get_status_display().lower()} already")
        current_sha = ModelVersion.objects.filter(pk=req.candidate_id).values_list("artifact_sha256", flat=True).first()
        if decision == ReviewDecision.APPROVE and current_sha == req.artifact_sha256:
            current_sha = _stored_sha256(req.candidate)  # the bytes on disk, not only the recorded hash
        if artifact_sha256 != req.artifact_sha256 or current_sha != req.artifact_sha256:
            raise Conflict("The candidate's artifact is not the one you reviewed (sha256 changed): reload the "
                           "request and read the evidence again", field="artifact_sha256")
        if evidence_hash != req.evidence_hash:
            raise Conflict("The evidence changed after you read it (it was refreshed): reload the request and "
                           "read it again before deciding", field="evidence_hash")
        failing = failing_gates(req)
        if decision == ReviewDecision.APPROVE and failing and not override_reason:
            names = ", ".join(g["name"] for g in failing)
            raise InvalidInput(f"Gate(s) failing: {names}. Approving anyway needs an explicit override reason",
                               field="override_reason")
        if decision == ReviewDecision.APPROVE and counting_approvals(req).filter(reviewer=reviewer).exists():
            raise Conflict("You have approved this evidence already; another reviewer must approve")
        review = PromotionReview.objects.create(
            request=req, reviewer=reviewer, decision=decision, comment=comment,
            override_reason=override_reason if decision == ReviewDecision.APPROVE else "",
            failing_gates=[g["key"] for g in failing] if decision == ReviewDecision.APPROVE else [],
            evidence_hash=req.evidence_hash, artifact_sha256=req.artifact_sha256)
        audit_record(actor=reviewer, verb=f"promotion.{decision}", project=project, target=req,
                     target_label=f"{req.deployment.slug}: {req.candidate}",
                     details={"comment": comment, "override_reason": override_reason or None,
                              "overridden_gates": review.failing_gates, "evidence_hash": req.evidence_hash,
                              "artifact_sha256": req.artifact_sha256})
        if decision == ReviewDecision.REJECT:
            _decide(req, PromotionStatus.REJECTED, reviewer, comment)
        elif counting_approvals(req).values("reviewer").distinct().count() >= req.approvals_required:
            deployment = Deployment.objects.select_for_update().get(pk=req.deployment_id)
            if deployment.production_version_id != req.production_version_id:
                raise Conflict(f"Production changed since this evidence was frozen (now "
                               f"{deployment.production_version}): refresh the evidence first")
            names = ", ".join(a.reviewer.username for a in counting_approvals(req))
            reason = (f"Promotion request #{req.pk} approved by {names}"
                      + (f" (override: {override_reason})" if override_reason else ""))
            if req.candidate_id == deployment.production_version_id:
                if not deployment_never_live(deployment):
                    raise Conflict(f"{req.candidate} is already the production version of {deployment.slug}")
                # A first version: approval puts the paused deployment live with it.
                deployment_resume(deployment=deployment, actor=reviewer, action="promotion.review",
                                  reason=reason[:500])
            else:
                deployment_version_set(
                    deployment=deployment, actor=reviewer, version=req.candidate, kind=DeploymentEvent.Kind.PROMOTE,
                    action="promotion.review", reason=reason,
                    details={"promotion_request": req.pk, "evidence_hash": req.evidence_hash,
                             "artifact_sha256": req.artifact_sha256})
            _decide(req, PromotionStatus.PROMOTED, reviewer, comment)
            # The candidate now answers production traffic itself: its shadow runs here have done their job.
            ShadowRun.objects.filter(deployment=deployment, candidate=req.candidate, status=ShadowStatus.ACTIVE).update(
                status=ShadowStatus.STOPPED, stopped_by=reviewer, stopped_at=timezone.now())
            Canary.objects.filter(deployment=deployment, candidate=req.candidate).delete()
    return review


def _decide(req: PromotionRequest, status: str, actor, comment: str) -> None:
    req.status, req.decided_at, req.decided_by, req.decision_comment = status, timezone.now(), actor, comment
    req.save(update_fields=["status", "decided_at", "decided_by", "decision_comment"])
    transaction.on_commit(lambda: _notify_decision(req))

"""Rollout of a version on a live deployment: canaries (a share of live requests to a candidate) and
rollback (back along the release history in one action, pausing the other candidates; each paused canary
or shadow run can be resumed by whoever may manage it, recorded on the timeline)."""

from __future__ import annotations

import math

from django.db import transaction
from django.utils import timezone

from apps.common.errors import Conflict, InvalidInput, PermissionDenied
from apps.deployments.models import Canary, CanarySticky, Deployment, DeploymentEvent
from apps.deployments.services import deployment_version_set, serving_generation_bump
from apps.projects.permissions import can
from apps.projects.services import audit_record

from .shadow import _candidate_check


def _require(user, project, action: str) -> None:
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")


def release_history(*, deployment: Deployment) -> list:
    """The versions production went through, oldest first, with rolled-back ones removed: each deploy /
    switch / promotion pushes its version, each rollback drops the version it rolled back from."""
    stack: list = []
    events = (deployment.events.filter(kind__in=DeploymentEvent.VERSION_KINDS).order_by("created_at", "id")
              .select_related("version__model"))
    for event in events:
        if event.version is None:
            continue
        if event.kind == DeploymentEvent.Kind.ROLLBACK:
            if stack:
                stack.pop()
            if not stack or stack[-1].pk != event.version_id:  # an irregular history: trust the event
                stack.append(event.version)
        else:
            stack.append(event.version)
    if not stack or stack[-1].pk != deployment.production_version_id:
        stack.append(deployment.production_version)
    return stack


def rollback_target(*, deployment: Deployment):
    """The version production had before the current one on the release history (v3 → v2 → v1; a second
    rollback goes further back, never to the version just rolled back from). None when there is none."""
    history = release_history(deployment=deployment)
    current = deployment.production_version_id
    for version in reversed(history[:-1]):
        if version.pk != current:
            return version
    return None


def deployment_rollback(*, deployment: Deployment, actor, reason: str = "") -> Deployment:
    """The emergency stop, in one action for the deployment's owner: production goes back along the release
    history at once, and the canary and every active shadow run on the deployment are paused (each recorded
    on the timeline), so no other candidate keeps answering or collecting evidence until someone resumes it
    (``canary_resume``, ``shadow_run_resume``)."""
    from apps.releases.models import ShadowRun, ShadowStatus

    project = deployment.project
    is_owner = deployment.owner_id == actor.pk and can(actor, project, "deployment.manage")
    if not (is_owner or can(actor, project, "deployment.rollback")):
        raise PermissionDenied("Only the deployment's owner (or a project owner) may roll it back")
    target = rollback_target(deployment=deployment)
    if target is None:
        raise Conflict(f"{deployment.slug} has no previous production version to roll back to")
    reason = (reason or "").strip()[:400]
    from_version = deployment.production_version
    with transaction.atomic():
        dep = deployment_version_set(
            deployment=deployment, actor=actor, version=target, kind=DeploymentEvent.Kind.ROLLBACK,
            action="deployment.manage" if is_owner else "deployment.rollback",
            reason=f"Rolled back from {from_version}" + (f": {reason}" if reason else ""),
            details={"rollback": True})
        canary = Canary.objects.select_for_update().filter(deployment=dep, paused_at__isnull=True) \
            .select_related("candidate").first()
        paused = []
        now = timezone.now()
        if canary is not None:
            canary.paused_at, canary.paused_reason = now, f"Paused by the emergency rollback from {from_version}"
            canary.save(update_fields=["paused_at", "paused_reason", "updated_at"])
            DeploymentEvent.objects.create(
                deployment=dep, kind="canary", version=target, previous_version=canary.candidate, actor=actor,
                reason=f"Canary of {canary.candidate} ({canary.percent:g}%) paused by the emergency rollback "
                       "(resume it on the releases page)")
            paused.append(f"canary {canary.candidate}")
        for run in ShadowRun.objects.select_for_update().filter(deployment=dep, status=ShadowStatus.ACTIVE) \
                .select_related("candidate"):
            run.status, run.paused_at = ShadowStatus.PAUSED, now
            run.save(update_fields=["status", "paused_at"])
            DeploymentEvent.objects.create(deployment=dep, kind="shadow", version=run.candidate, actor=actor,
                                           reason=f"Shadow run #{run.pk} of {run.candidate} paused by the "
                                                  "emergency rollback (resume it on its page)")
            paused.append(f"shadow run #{run.pk}")
        if paused:
            audit_record(actor=actor, verb="deployment.rollback_pause_candidates", project=project, target=dep,
                         details={"paused": paused, "from": str(from_version), "to": str(target)})
            serving_generation_bump()
    return dep


# --- canary --------------------------------------------------------------------------------------


def canary_set(*, deployment: Deployment, actor, candidate, percent: float, sticky_by: str = "request"):
    """Route ``percent`` % of live requests (sticky by request id or entity key) to ``candidate``."""
    _require(actor, deployment.project, "deployment.manage")
    _candidate_check(deployment, candidate)
    try:
        percent = float(percent)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("The share must be a number of percent", field="percent") from exc
    if not (0 < percent <= 50) or not math.isfinite(percent):
        raise InvalidInput("A canary takes more than 0 and at most 50 percent of the requests", field="percent")
    if sticky_by not in CanarySticky.values:
        raise InvalidInput("Sticky by 'request' or 'entity'", field="sticky_by")
    if sticky_by == CanarySticky.ENTITY and deployment.input_mode != "entity":
        raise InvalidInput("Sticky by entity needs a deployment that takes entity keys", field="sticky_by")
    with transaction.atomic():
        canary, _ = Canary.objects.update_or_create(
            deployment=deployment, defaults={"candidate": candidate, "percent": percent, "sticky_by": sticky_by,
                                             "created_by": actor, "paused_at": None, "paused_reason": ""})
        DeploymentEvent.objects.create(deployment=deployment, kind="canary", version=candidate,
                                       previous_version=deployment.production_version, actor=actor,
                                       reason=f"Canary: {percent:g}% of requests (sticky by {sticky_by}) to {candidate}")
        audit_record(actor=actor, verb="deployment.canary", project=deployment.project, target=deployment,
                     details={"candidate": str(candidate), "percent": percent, "sticky_by": sticky_by})
        serving_generation_bump()
    return canary


def canary_stop(*, deployment: Deployment, actor) -> None:
    _require(actor, deployment.project, "deployment.manage")
    with transaction.atomic():
        canary = Canary.objects.select_for_update().filter(deployment=deployment).first()
        if canary is None:
            raise Conflict(f"{deployment.slug} has no canary")
        canary.delete()
        DeploymentEvent.objects.create(deployment=deployment, kind="canary", version=deployment.production_version,
                                       actor=actor, reason="Canary stopped: production answers every request")
        audit_record(actor=actor, verb="deployment.canary_stop", project=deployment.project, target=deployment)
        serving_generation_bump()


def canary_resume(*, deployment: Deployment, actor):
    """Resume a canary an emergency rollback paused (same share and stickiness), recorded on the timeline."""
    _require(actor, deployment.project, "deployment.manage")
    with transaction.atomic():
        canary = Canary.objects.select_for_update().filter(deployment=deployment).select_related("candidate").first()
        if canary is None or canary.paused_at is None:
            raise Conflict(f"{deployment.slug} has no paused canary")
        deployment.refresh_from_db(fields=["production_version"])
        if canary.candidate_id == deployment.production_version_id:
            raise Conflict(f"{canary.candidate} is the production version now: stop the canary instead")
        canary.paused_at, canary.paused_reason = None, ""
        canary.save(update_fields=["paused_at", "paused_reason", "updated_at"])
        DeploymentEvent.objects.create(deployment=deployment, kind="canary", version=canary.candidate,
                                       previous_version=deployment.production_version, actor=actor,
                                       reason=f"Canary resumed: {canary.percent:g}% of requests (sticky by "
                                              f"{canary.sticky_by}) to {canary.candidate}")
        audit_record(actor=actor, verb="deployment.canary_resume", project=deployment.project, target=deployment,
                     details={"candidate": str(canary.candidate), "percent": canary.percent})
        serving_generation_bump()
    return canary

"""Rollout of a version on a live deployment: canaries (a share of live requests to a candidate) and
rollback (back to the previous production version in one action)."""

from __future__ import annotations

import math

from django.db import transaction

from apps.common.errors import Conflict, InvalidInput, PermissionDenied
from apps.deployments.models import Canary, CanarySticky, Deployment, DeploymentEvent
from apps.deployments.services import deployment_version_set, serving_generation_bump
from apps.projects.permissions import can
from apps.projects.services import audit_record

from .shadow import _candidate_check


def _require(user, project, action: str) -> None:
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")


def rollback_target(*, deployment: Deployment):
    """The version production had before the current one (None when there is none)."""
    event = (deployment.events.filter(kind__in=DeploymentEvent.VERSION_KINDS,
                                      version_id=deployment.production_version_id,
                                      previous_version__isnull=False)
             .order_by("-created_at", "-id").select_related("previous_version__model").first())
    return event.previous_version if event else None


def deployment_rollback(*, deployment: Deployment, actor, reason: str = "") -> Deployment:
    """One action for the deployment's owner: production goes back to the previous version at once."""
    project = deployment.project
    is_owner = deployment.owner_id == actor.pk and can(actor, project, "deployment.manage")
    if not (is_owner or can(actor, project, "deployment.rollback")):
        raise PermissionDenied("Only the deployment's owner (or a project owner) may roll it back")
    target = rollback_target(deployment=deployment)
    if target is None:
        raise Conflict(f"{deployment.slug} has no previous production version to roll back to")
    reason = (reason or "").strip()[:400]
    return deployment_version_set(
        deployment=deployment, actor=actor, version=target, kind=DeploymentEvent.Kind.ROLLBACK,
        action="deployment.manage" if is_owner else "deployment.rollback",
        reason=f"Rolled back from {deployment.production_version}" + (f": {reason}" if reason else ""),
        details={"rollback": True})


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
                                             "created_by": actor})
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

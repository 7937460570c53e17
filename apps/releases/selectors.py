"""Reads of releases shared by pages and the API; callers pass a project already checked by a selector."""

from __future__ import annotations

from apps.common.errors import NotFound
from apps.deployments.models import Deployment
from apps.projects.models import Membership, Project
from apps.projects.permissions import ACTIONS

from .models import PromotionRequest, PromotionStatus


def promotion_inbox_for_user(*, user):
    """Open requests the user may review (never their own), across their projects."""
    roles = ACTIONS["promotion.review"]
    project_ids = Membership.objects.filter(user=user, role__in=roles).values_list("project_id", flat=True)
    return (PromotionRequest.objects.filter(status=PromotionStatus.OPEN, project_id__in=project_ids)
            .exclude(requested_by=user)
            .select_related("project", "deployment", "candidate__model", "production_version", "requested_by")
            .order_by("created_at"))


def promotion_request_list(*, project: Project, status: str = "", deployment: Deployment | None = None):
    qs = (PromotionRequest.objects.filter(project=project)
          .select_related("deployment", "candidate__model", "production_version", "requested_by", "decided_by"))
    if status:
        qs = qs.filter(status=status)
    if deployment is not None:
        qs = qs.filter(deployment=deployment)
    return qs.order_by("-created_at", "-id")


def promotion_request_get(*, project: Project, pk: int) -> PromotionRequest:
    req = promotion_request_list(project=project).filter(pk=pk).first()
    if req is None:
        raise NotFound(f"No promotion request #{pk} in {project.name}")
    return req

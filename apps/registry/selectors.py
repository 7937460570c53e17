"""Reads of the registry, shared by pages, the API and workers; always start from a checked project."""

from __future__ import annotations

from django.db.models import Count, Max, Q, QuerySet

from apps.common.errors import InvalidInput, NotFound
from apps.projects.models import Project

from .models import ModelVersion, RegisteredModel, VersionStatus


def registered_model_list(*, project: Project, include_archived: bool = False, search: str = "",
                          task: str = "") -> QuerySet[RegisteredModel]:
    qs = project.registered_models.all()
    if not include_archived:
        qs = qs.filter(archived_at__isnull=True)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(description__icontains=search))
    if task:
        qs = qs.filter(task=task)
    return qs.annotate(
        version_count=Count("versions", distinct=True),
        ready_count=Count("versions", filter=Q(versions__status=VersionStatus.READY), distinct=True),
        latest_version=Max("versions__version"),
    ).select_related("feature_set").order_by("name")


def registered_model_get(*, project: Project, name: str) -> RegisteredModel:
    model = project.registered_models.filter(name=name).select_related("project").first()
    if model is None:
        raise NotFound(f"No model named {name!r} in {project.name}")
    return model


def model_version_list(*, model: RegisteredModel, status: str = "") -> QuerySet[ModelVersion]:
    qs = model.versions.select_related("created_by", "job", "parent").order_by("-version")
    if status:
        qs = qs.filter(status=status)
    return qs


def model_version_get(*, model: RegisteredModel, version: int) -> ModelVersion:
    obj = model.versions.select_related("model__project", "created_by", "parent", "training_set", "job").filter(
        version=version).first()
    if obj is None:
        raise NotFound(f"{model.name} has no version {version}")
    return obj


def model_version_get_by_id(*, project: Project, version_id: int) -> ModelVersion:
    obj = ModelVersion.objects.select_related("model__project").filter(pk=version_id, model__project=project).first()
    if obj is None:
        raise NotFound("Model version not found")
    return obj


def model_version_lineage(*, version: ModelVersion) -> dict:
    chain, seen, cur = [], set(), version.parent
    while cur is not None and cur.pk not in seen and len(chain) < 50:
        seen.add(cur.pk)
        chain.append({"id": cur.pk, "model": cur.model.name, "version": cur.version})
        cur = cur.parent
    ts = version.training_set
    return {
        "artifact": {"sha256": version.artifact_sha256, "size": version.artifact_size,
                     "format": version.artifact_format, "filename": version.original_filename},
        "training_data": {"name": version.training_data_name, "sha256": version.training_data_sha256,
                          "training_set": ({"id": ts.pk, "name": ts.name, "sha256": ts.sha256} if ts else None)},
        "holdout": {"filename": version.holdout_filename, "target": version.holdout_target} if version.holdout_key else None,
        "parent": chain[0] if chain else None,
        "ancestors": chain,
        "code_ref": version.code_ref,
        "created_by": version.created_by.username if version.created_by else None,
        "created_at": version.created_at.isoformat(),
        "validated_at": version.validated_at.isoformat() if version.validated_at else None,
        "feature_set": version.model.feature_set.name if version.model.feature_set_id else None,
    }


def model_versions_for_compare(*, model: RegisteredModel, a: int | None, b: int | None):
    versions = list(model.versions.order_by("-version")[:2]) if not (a and b) else None
    if versions is not None:
        if len(versions) < 2:
            raise InvalidInput("Compare needs two versions")
        return versions[1], versions[0]
    return model_version_get(model=model, version=a), model_version_get(model=model, version=b)


def ready_versions_for_project(*, project: Project) -> QuerySet[ModelVersion]:
    """READY versions of a project (used by deployments to pick a version)."""
    return ModelVersion.objects.filter(model__project=project, status=VersionStatus.READY).select_related("model")

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


def contract_preview_for_upload(*, model: RegisteredModel, actor, holdout=None, training_data=None,
                                holdout_target: str = "target", null_values: str = "") -> dict:
    """The contract a model whose contract is still to be inferred would get from an upload's data file — the
    training data, else the holdout without its target column — read from the file's columns and dtypes
    only, as validation reads them (``apps.common.tabular``; no model is loaded in the web process: the
    worker adds the model's names, order and encoder categories). ``{"source", "filename", "target",
    "features", "notes"}``; an unreadable file is InvalidInput naming it."""
    import tempfile
    from pathlib import Path

    from django.conf import settings

    from apps.common import tabular
    from apps.common.errors import PermissionDenied
    from apps.projects.permissions import can

    from . import contract as spec
    from . import infer

    if not can(actor, model.project, "model.upload"):
        raise PermissionDenied(f"Your role in {model.project.name} does not allow model.upload")
    upload, field, label = ((training_data, "training_data", "training data file") if training_data
                            else (holdout, "holdout", "holdout file"))
    if upload is None:
        raise InvalidInput("Choose a holdout or training data file to preview the contract", field="holdout")
    target = (holdout_target or "target").strip() or "target"
    declared = list(model.input_contract or [])
    try:
        nulls = tabular.parse_null_values(null_values)
    except (tabular.TableError, ValueError) as exc:
        raise InvalidInput(str(exc), field="null_values") from exc
    types = {c["name"]: spec.canonical_type(c.get("type")) for c in declared
             if spec.canonical_type(c.get("type")) in tabular.TYPES}
    with tempfile.TemporaryDirectory(prefix="slipway-preview-") as tmp:
        path = getattr(upload, "temporary_file_path", lambda: None)()
        if path is None:
            path = Path(tmp) / "table"
            with open(path, "wb") as fh:
                for chunk in upload.chunks():
                    fh.write(chunk)
        try:
            frame, _fmt = tabular.read_table(path, filename=f"The {label}", types=types or None,
                                             null_values=nulls, max_rows=settings.REGISTRY_TABLE_MAX_ROWS)
        except tabular.TableError as exc:
            raise InvalidInput(str(exc), field=field) from exc
        except Exception as exc:  # noqa: BLE001 - an unreadable upload is the uploader's error
            raise InvalidInput(f"The {label} cannot be read: {str(exc).splitlines()[0][:300]}", field=field) from exc
    df = frame.to_pandas()
    notes = []
    if field == "holdout" and target not in df.columns:
        notes.append(f"The holdout file has no target column {target!r}: validation would reject it (set the "
                     "target column's name below)")
    if field == "training_data" and holdout:
        notes.append("Types come from the training data file, as validation reads them; the holdout is then read "
                     "with those types")
    if declared:  # the file checked against the declared contract, as validation and serving read it
        return {"mode": "check", "source": label, "filename": getattr(upload, "name", ""), "target": target,
                "notes": notes, "rows": int(len(df)), **infer.check_frame_against(df, declared, exclude=(target,))}
    try:
        features = infer.preview_from_frame(df, exclude=(target,))
    except ValueError as exc:
        raise InvalidInput(str(exc), field=field) from exc
    if not features:
        raise InvalidInput(f"The {label} has no columns besides the target {target!r}", field=field)
    return {"source": label, "filename": getattr(upload, "name", ""), "target": target, "features": features,
            "notes": notes, "rows": int(len(df))}

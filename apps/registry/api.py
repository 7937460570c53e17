"""Registry API: /api/v1/projects/{project}/models[/{model}/versions[/{version}[/metrics|/lineage|/profile]]]."""

from django.urls import reverse
from ninja import Query, Router, Status

from apps.common.errors import InvalidInput, NotFound
from apps.common.idempotency import idempotency_key
from apps.common.schemas import IDEMPOTENT, Page, located, paginate
from apps.projects.access import api_permission
from apps.projects.selectors import project_get_for_user

from . import selectors, services
from .forms import VersionUploadForm
from .models import ModelVersion
from .schemas import (
    ArchiveIn,
    ContractIn,
    MetricsOut,
    ModelIn,
    ModelOut,
    ProfileOut,
    VersionOut,
    VersionPatch,
)

router = Router(tags=["registry"])
P = "/projects/{project}/models"


def _model_out(m) -> dict:
    return {"id": m.pk, "name": m.name, "task": m.task, "description": m.description,
            "input_contract": m.input_contract, "contract_pending": not m.input_contract,
            "feature_set": m.feature_set.name if m.feature_set_id else None,
            "created_by": m.created_by.username if m.created_by else None, "created_at": m.created_at,
            "archived_at": m.archived_at, "versions": getattr(m, "version_count", None) or m.versions.count()}


def _version_out(v: ModelVersion) -> dict:
    project = v.model.project
    return {
        "id": v.pk, "model": v.model.name, "version": v.version, "status": v.status, "status_reason": v.status_reason,
        "artifact_format": v.artifact_format, "artifact_sha256": v.artifact_sha256, "artifact_size": v.artifact_size,
        "original_filename": v.original_filename, "serving_format": v.serving_format, "onnx_verified": v.onnx_verified,
        "classes": v.classes, "framework": v.framework, "library_versions": v.library_versions, "params": v.params,
        "metrics": v.metrics, "uploader_metrics": v.uploader_metrics, "tags": v.tags, "model_card": v.model_card,
        "validation_report": v.validation_report, "code_ref": v.code_ref,
        "parent_version": v.parent.version if v.parent_id else None,
        "created_by": v.created_by.username if v.created_by else None, "created_at": v.created_at,
        "validated_at": v.validated_at, "job_id": str(v.job_id) if v.job_id else None,
        "url": reverse("registry:version-detail", kwargs={"project": project.slug, "model": v.model.name,
                                                           "version": v.version}),
    }


def _model(request, project: str, model: str, action: str):
    p = project_get_for_user(user=request.auth, slug=project, action=action)
    return selectors.registered_model_get(project=p, name=model)


@router.get(P, response=list[ModelOut])
@api_permission("model.view")
def list_models(request, project: str, page: Query[Page], search: str = "", task: str = "",
                include_archived: bool = False):
    p = project_get_for_user(user=request.auth, slug=project, action="model.view")
    qs = selectors.registered_model_list(project=p, search=search, task=task, include_archived=include_archived)
    return [_model_out(m) for m in paginate(request, qs, page)]


@router.post(P, response={201: ModelOut})
@api_permission("model.upload")
def create_model(request, project: str, payload: ModelIn):
    p = project_get_for_user(user=request.auth, slug=project, action="model.upload")
    feature_set = None
    if payload.feature_set:
        from apps.features.models import FeatureSet

        feature_set = FeatureSet.objects.filter(project=p, name=payload.feature_set).first()
        if feature_set is None:
            raise NotFound(f"No feature set named {payload.feature_set!r}", field="feature_set")
    model = services.registered_model_create(
        project=p, actor=request.auth, name=payload.name, task=payload.task, description=payload.description,
        input_contract=(payload.input_contract if isinstance(payload.input_contract, str)
                        else [c.dict(exclude_none=True) for c in payload.input_contract]),
        feature_set=feature_set)
    located(request, f"/api/v1/projects/{p.slug}/models/{model.name}")
    return Status(201, _model_out(model))


@router.get(P + "/{model}", response=ModelOut)
@api_permission("model.view")
def get_model(request, project: str, model: str):
    return _model_out(_model(request, project, model, "model.view"))


@router.put(P + "/{model}/contract", response=ModelOut)
@api_permission("model.upload")
def update_contract(request, project: str, model: str, payload: ContractIn):
    """Change nullable, categories or the unknown-category policy ("refuse"/"pass") of the model's features;
    names, order and types stay (422 naming the differences)."""
    m = _model(request, project, model, "model.upload")
    return _model_out(services.registered_model_contract_update(
        model=m, actor=request.auth, input_contract=[c.dict(exclude_none=True) for c in payload.input_contract]))


@router.get(P + "/{model}/versions", response=list[VersionOut])
@api_permission("model.view")
def list_versions(request, project: str, model: str, page: Query[Page], status: str = ""):
    m = _model(request, project, model, "model.view")
    return [_version_out(v) for v in paginate(request, selectors.model_version_list(model=m, status=status), page)]


_UPLOAD_DOC = {
    "requestBody": {"content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["artifact"],
        "properties": {
            "artifact": {"type": "string", "format": "binary", "description": "skops, ONNX, joblib or pickle; or XGBoost JSON/UBJSON (save_model) or LightGBM text "
                                      "(booster.save_model)"},
            "holdout": {"type": "string", "format": "binary", "description": "CSV or Parquet with the target"},
            "holdout_target": {"type": "string", "default": "target"},
            "training_data": {"type": "string", "format": "binary"},
            "null_values": {"type": "string", "description": "extra null tokens of the holdout and training data "
                            "files: a JSON list or comma-separated text (NA, null); only the empty cell by default"},
            "uploader_metrics": {"type": "string", "description": 'JSON object, e.g. {"auc": 0.91}'},
            "tags": {"type": "string", "description": "comma separated"},
            "code_ref": {"type": "string"}, "parent_version": {"type": "integer", "minimum": 1},
            "model_card": {"type": "string", "description": "markdown"},
        }}}}},
}


@router.post(P + "/{model}/versions", response={202: VersionOut}, openapi_extra={**_UPLOAD_DOC, **IDEMPOTENT})
@api_permission("model.upload")
def upload_version(request, project: str, model: str):
    """Upload a version (multipart). Answers 202: validation runs in a worker; poll the version."""
    from .views import limit_upload

    m = _model(request, project, model, "model.upload")
    limit_upload(request)
    form = VersionUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        errors = [{"field": f, "message": str(msg)} for f, msgs in form.errors.items() for msg in msgs]
        raise InvalidInput(f"Invalid upload: {errors[0]['field']}: {errors[0]['message']}", errors=errors)
    d = form.cleaned_data
    version = services.model_version_upload(
        model=m, actor=request.auth, artifact=d["artifact"], filename=d["artifact"].name, holdout=d.get("holdout"),
        holdout_target=d.get("holdout_target") or "target", training_data=d.get("training_data"),
        null_values=d.get("null_values"), uploader_metrics=d.get("uploader_metrics"), tags=d.get("tags"), model_card=d.get("model_card") or "",
        code_ref=d.get("code_ref") or "", parent_version=d.get("parent_version"),
        idempotency_key=idempotency_key(request))
    located(request, f"/api/v1/projects/{m.project.slug}/models/{m.name}/versions/{version.version}")
    return Status(202, _version_out(version))


@router.get(P + "/{model}/versions/{version}", response=VersionOut)
@api_permission("model.view")
def get_version(request, project: str, model: str, version: int):
    m = _model(request, project, model, "model.view")
    return _version_out(selectors.model_version_get(model=m, version=version))


@router.patch(P + "/{model}/versions/{version}", response=VersionOut)
@api_permission("model.upload")
def update_version(request, project: str, model: str, version: int, payload: VersionPatch):
    m = _model(request, project, model, "model.upload")
    v = services.model_version_update(version=selectors.model_version_get(model=m, version=version), actor=request.auth,
                                      tags=payload.tags, model_card=payload.model_card)
    return _version_out(v)


@router.post(P + "/{model}/versions/{version}/archive", response=VersionOut)
@api_permission("model.archive")
def archive_version(request, project: str, model: str, version: int, payload: ArchiveIn):
    m = _model(request, project, model, "model.archive")
    v = services.model_version_archive(version=selectors.model_version_get(model=m, version=version),
                                       actor=request.auth, archived=payload.archived)
    return _version_out(v)


@router.get(P + "/{model}/versions/{version}/metrics", response=MetricsOut)
@api_permission("model.view")
def version_metrics(request, project: str, model: str, version: int):
    v = selectors.model_version_get(model=_model(request, project, model, "model.view"), version=version)
    return {"version": v.version, "status": v.status, "metrics": v.metrics, "uploader_metrics": v.uploader_metrics}


@router.get(P + "/{model}/versions/{version}/lineage", response=dict)
@api_permission("model.view")
def version_lineage(request, project: str, model: str, version: int):
    v = selectors.model_version_get(model=_model(request, project, model, "model.view"), version=version)
    return selectors.model_version_lineage(version=v)


@router.get(P + "/{model}/versions/{version}/profile", response=ProfileOut)
@api_permission("model.view")
def version_profile(request, project: str, model: str, version: int):
    v = selectors.model_version_get(model=_model(request, project, model, "model.view"), version=version)
    return {"version": v.version, "reference_profile": v.reference_profile}




from django.shortcuts import get_object_or_404
from ninja import Query, Router, Status
from ninja.security import HttpBearer

from apps.common.errors import NotFound
from apps.common.schemas import ErrorOut, Page, located, paginate
from apps.projects.access import api_permission
from apps.projects.selectors import project_get_for_user, user_get_by_username

from . import selectors, services
from .models import DeploymentApiKey
from .schemas import (
    DeploymentIn,
    DeploymentOut,
    EventOut,
    KeyCreatedOut,
    KeyIn,
    KeyOut,
    PauseIn,
    PredictIn,
    PredictionLogOut,
    PredictOut,
    VersionIn,
)

router = Router(tags=["deployments"])


def _out(dep) -> dict:
    return {"slug": dep.slug, "name": dep.name, "project": dep.project.slug, "status": dep.status,
            "status_message": dep.status_message, "input_mode": dep.input_mode, "max_batch": dep.max_batch,
            "model": dep.registered_model.name, "production_version_id": dep.production_version_id,
            "production_version": dep.production_version.version,
            "owner": dep.owner.username if dep.owner else None,
            "predict_url": f"/api/v1/deployments/{dep.slug}/predict", "created_at": dep.created_at}


def _dep(request, project: str, deployment: str, action: str):
    proj = project_get_for_user(user=request.auth, slug=project, action=action)
    return proj, selectors.deployment_get_for_user(user=request.auth, project=proj, slug=deployment, action=action)


def _version(project, version_id: int):
    version = selectors.deployable_versions(project=project).model.objects.select_related("model").filter(
        pk=version_id, model__project=project).first()
    if version is None:
        raise NotFound(f"No model version {version_id} in {project.name}", field="version_id")
    return version


@router.get("/projects/{project}/deployments", response=list[DeploymentOut])
@api_permission("deployment.view")
def list_deployments(request, project: str, page: Query[Page]):
    proj = project_get_for_user(user=request.auth, slug=project, action="deployment.view")
    qs = selectors.deployment_list_for_project(project=proj)
    return [_out(d) for d in paginate(request, qs, page)]


@router.post("/projects/{project}/deployments", response={201: DeploymentOut})
@api_permission("deployment.manage")
def create_deployment(request, project: str, payload: DeploymentIn):
    proj = project_get_for_user(user=request.auth, slug=project, action="deployment.manage")
    owner = user_get_by_username(username=payload.owner) if payload.owner else None
    dep = services.deployment_create(project=proj, actor=request.auth, version=_version(proj, payload.version_id),
                                     slug=payload.slug, name=payload.name, owner=owner, input_mode=payload.input_mode,
                                     max_batch=payload.max_batch, go_live=payload.go_live,
                                     override_reason=payload.override_reason)
    located(request, f"/api/v1/projects/{proj.slug}/deployments/{dep.slug}")
    return Status(201, _out(dep))


@router.get("/projects/{project}/deployments/{deployment}", response=DeploymentOut)
@api_permission("deployment.view")
def get_deployment(request, project: str, deployment: str):
    return _out(_dep(request, project, deployment, "deployment.view")[1])


@router.post("/projects/{project}/deployments/{deployment}/pause", response=DeploymentOut)
@api_permission("deployment.manage")
def pause_deployment(request, project: str, deployment: str, payload: PauseIn):
    _, dep = _dep(request, project, deployment, "deployment.manage")
    return _out(services.deployment_pause(deployment=dep, actor=request.auth, reason=payload.reason))


@router.post("/projects/{project}/deployments/{deployment}/resume", response=DeploymentOut)
@api_permission("deployment.manage")
def resume_deployment(request, project: str, deployment: str):
    _, dep = _dep(request, project, deployment, "deployment.manage")
    return _out(services.deployment_resume(deployment=dep, actor=request.auth))


@router.post("/projects/{project}/deployments/{deployment}/version", response=DeploymentOut)
@api_permission("deployment.manage")
def set_version(request, project: str, deployment: str, payload: VersionIn):
    proj, dep = _dep(request, project, deployment, "deployment.manage")
    return _out(services.deployment_version_set(deployment=dep, actor=request.auth,
                                                version=_version(proj, payload.version_id), reason=payload.reason))


@router.get("/projects/{project}/deployments/{deployment}/events", response=list[EventOut])
@api_permission("deployment.view")
def list_events(request, project: str, deployment: str, page: Query[Page]):
    _, dep = _dep(request, project, deployment, "deployment.view")
    qs = paginate(request, selectors.deployment_events(deployment=dep), page)
    return [{"kind": e.kind, "version_id": e.version_id, "previous_version_id": e.previous_version_id,
             "reason": e.reason, "actor": e.actor.username if e.actor else None, "created_at": e.created_at}
            for e in qs]


@router.get("/projects/{project}/deployments/{deployment}/predictions", response=list[PredictionLogOut])
@api_permission("deployment.view")
def list_predictions(request, project: str, deployment: str, page: Query[Page]):
    _, dep = _dep(request, project, deployment, "deployment.view")
    return list(paginate(request, selectors.prediction_log_for_deployment(deployment=dep), page))


@router.get("/projects/{project}/deployments/{deployment}/keys", response=list[KeyOut])
@api_permission("deployment.keys")
def list_keys(request, project: str, deployment: str, page: Query[Page]):
    _, dep = _dep(request, project, deployment, "deployment.keys")
    return list(paginate(request, selectors.api_key_list(deployment=dep), page))


@router.post("/projects/{project}/deployments/{deployment}/keys", response={201: KeyCreatedOut})
@api_permission("deployment.keys")
def create_key(request, project: str, deployment: str, payload: KeyIn):
    _, dep = _dep(request, project, deployment, "deployment.keys")
    key, plaintext = services.deployment_api_key_create(deployment=dep, actor=request.auth, name=payload.name)
    located(request, f"/api/v1/projects/{dep.project.slug}/deployments/{dep.slug}/keys/{key.pk}")
    return Status(201, {**KeyOut.from_orm(key).dict(), "key": plaintext})


@router.post("/projects/{project}/deployments/{deployment}/keys/{key_id}/revoke", response=KeyOut)
@api_permission("deployment.keys")
def revoke_key(request, project: str, deployment: str, key_id: int):
    _, dep = _dep(request, project, deployment, "deployment.keys")
    key = get_object_or_404(DeploymentApiKey, pk=key_id, deployment=dep)
    return services.deployment_api_key_revoke(key=key, actor=request.auth)


class DeploymentKeyAuth(HttpBearer):
    openapi_description = "A deployment API key: `Authorization: Bearer sdk_…` (created on the deployment's page)."

    def authenticate(self, request, token):  # pragma: no cover - the hot path authenticates (serving.py)
        return None


@router.post("/deployments/{deployment}/predict", response={200: PredictOut, 503: ErrorOut}, auth=DeploymentKeyAuth(),
             summary="Predict (hot path)")
@api_permission("public")
def predict(request, deployment: str, payload: PredictIn):  # pragma: no cover - documentation only
    """Predictions from the deployment's production version.

    Answered by ``apps.deployments.serving`` ahead of this framework (this operation documents it).
    Body: ``{"instances": [{feature: value, ...}]}`` or ``{"entities": [key, ...]}``. Errors: 400 malformed
    JSON, 401 missing/revoked key, 403 key of another deployment, 404 unknown deployment, 413 body or
    batch too large, 415 not application/json, 422 invalid input (names the field), 503 paused.
    """
    raise NotFound("Served by the prediction endpoint")

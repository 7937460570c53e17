"""Feature store API: /api/v1/projects/{project}/entities | sources | feature-views | feature-sets | training-sets."""

from typing import Annotated

from django.contrib.auth import get_user_model
from django.http import FileResponse
from django.urls import reverse
from ninja import File, Form, Path, Query, Router, Status, UploadedFile

from apps.common.errors import NotFound
from apps.common.idempotency import idempotency_key
from apps.common.schemas import IDEMPOTENT, Page, job_location, located, paginate
from apps.common.storage import artifact_store
from apps.projects.access import api_permission
from apps.projects.auth import BrowserSessionAuth, TokenAuth
from apps.projects.schemas import JobAcceptedOut, JobOut, job_accepted
from apps.projects.selectors import project_get_for_user

from . import selectors, services
from .schemas import (
    NAME_PATTERN,
    EntityIn,
    EntityOut,
    FeatureSetIn,
    FeatureSetOut,
    FeatureSetPatch,
    FeatureViewIn,
    FeatureViewOut,
    FeatureViewPatch,
    FreshnessOut,
    OnlineIn,
    OnlineOut,
    SourceOut,
    SourceVersionOut,
    TrainingSetOut,
)

router = Router(tags=["features"])
P = "/projects/{project}"


def _project(request, project: str, action: str):
    return project_get_for_user(user=request.auth, slug=project, action=action)


def _user(username: str | None):
    if not username:
        return None
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFound(f"No active user named {username!r}", field="owner")
    return user


def _sec(delta):
    return delta.total_seconds() if delta is not None else None


def _view_out(view) -> dict:
    return {
        "name": view.name, "version": view.version, "is_current": view.is_current, "entity": view.entity.name,
        "source": view.source.name, "entity_column": view.entity_column, "timestamp_column": view.timestamp_column,
        "written_at_column": view.written_at_column, "availability_lag_seconds": view.availability_lag.total_seconds(),
        "ttl_seconds": _sec(view.ttl), "online": view.online, "freshness_sla_seconds": _sec(view.freshness_sla),
        "materialize_every_seconds": _sec(view.materialize_every),
        "owner": view.owner.username if view.owner else None, "tags": view.tags, "description": view.description,
        "features": [{"name": f.name, "value_type": f.value_type, "description": f.description}
                     for f in view.features.all()],
        "last_materialized_at": view.last_materialized_at, "online_row_count": view.online_row_count,
        "freshness": services.feature_view_freshness(view=view), "created_at": view.created_at,
    }


def _version_out(v) -> dict:
    return {"source": v.source.name, "version": v.version, "sha256": v.sha256, "size": v.size,
            "original_filename": v.original_filename, "original_format": v.original_format, "row_count": v.row_count,
            "columns": v.schema, "stats": v.stats, "created_at": v.created_at}


def _set_out(fs) -> dict:
    items = list(fs.ordered_items)
    return {"name": fs.name, "description": fs.description, "created_at": fs.created_at,
            "features": [{"name": it.output_name, "reference": it.reference, "view": it.feature.view.name,
                          "view_version": it.feature.view.version, "value_type": it.feature.value_type,
                          "online": it.feature.view.online} for it in items],
            "batch_only_features": [it.reference for it in items if not it.feature.view.online],
            "online_servable": all(it.feature.view.online for it in items)}


def _ts_out(ts) -> dict:
    return {
        "name": ts.name, "description": ts.description, "feature_set": ts.feature_set.name, "status": ts.status,
        "error": ts.error, "job_id": str(ts.job_id) if ts.job_id else None, "label_filename": ts.label_filename,
        "label_sha256": ts.label_sha256, "label_row_count": ts.label_row_count, "timestamp_column": ts.timestamp_column,
        "label_columns": ts.label_columns, "sha256": ts.sha256, "size": ts.size, "row_count": ts.row_count,
        "rows_without_features": ts.rows_without_features, "null_rates": ts.null_rates,
        "label_balance": ts.label_balance, "leakage": ts.leakage,
        "source_versions": [str(v) for v in ts.source_versions.select_related("source")],
        "created_at": ts.created_at, "built_at": ts.built_at,
        "download_url": reverse("api:features_training_set_download", kwargs={"project": ts.project.slug, "name": ts.name})
        if ts.is_ready else None,
    }


# --- entities -------------------------------------------------------------------------------------


@router.get(P + "/entities", response=list[EntityOut])
@api_permission("feature.view")
def list_entities(request, project: str, page: Query[Page]):
    return list(paginate(request, selectors.entity_list(project=_project(request, project, "feature.view")), page))


@router.post(P + "/entities", response={201: EntityOut})
@api_permission("feature.edit")
def create_entity(request, project: str, payload: EntityIn):
    obj = _project(request, project, "feature.edit")
    entity = services.entity_create(project=obj, actor=request.auth, **payload.dict())
    located(request, f"/api/v1/projects/{obj.slug}/entities/{entity.name}")
    return Status(201, entity)


# --- sources --------------------------------------------------------------------------------------


@router.get(P + "/sources", response=list[SourceOut])
@api_permission("feature.view")
def list_sources(request, project: str, page: Query[Page]):
    out = []
    for s in paginate(request, selectors.data_source_list(project=_project(request, project, "feature.view")), page):
        v = s.latest_version
        out.append({"name": s.name, "description": s.description, "latest_version": v.version if v else None,
                    "row_count": v.row_count if v else None, "columns": v.schema if v else [], "created_at": s.created_at})
    return out


@router.post(P + "/sources/{name}/versions", response={201: SourceVersionOut, 202: JobOut})
@api_permission("feature.edit")
def upload_source(request, project: str, name: Annotated[str, Path(pattern=NAME_PATTERN)], file: File[UploadedFile],
                  description: Form[str] = "",
                  column_types: Form[str] = "", null_values: Form[str] = ""):
    """Upload a CSV or Parquet file as the next version of source ``name`` (created on first upload).

    ``column_types``: declared types, JSON (``{"customer_id": "string"}``) or ``customer_id:string, ...``;
    later versions keep the first version's types. ``null_values``: extra null tokens (``NA, null``); only
    the empty cell is null otherwise. 201 with the version, or 202 with a job for a large or wide file
    (``SLIPWAY_FEATURES_UPLOAD_SYNC_MAX_BYTES`` / ``..._COLUMNS``): poll ``/api/v1/jobs/{id}``."""
    obj = _project(request, project, "feature.edit")
    version, job = services.data_source_upload_request(project=obj, actor=request.auth, name=name, upload=file,
                                                       filename=file.name, description=description,
                                                       column_types=column_types, null_values=null_values)
    if job is not None:
        job_location(request, job.pk)
        return Status(202, job)
    located(request, f"/api/v1/projects/{obj.slug}/sources/{name}/versions/{version.version}")
    return Status(201, _version_out(version))


@router.get(P + "/sources/{name}/versions", response=list[SourceVersionOut])
@api_permission("feature.view")
def list_source_versions(request, project: str, name: str, page: Query[Page]):
    source = selectors.data_source_get(project=_project(request, project, "feature.view"), name=name)
    return [_version_out(v) for v in paginate(request, source.versions.all(), page)]


# --- feature views --------------------------------------------------------------------------------


def _view_args(obj, payload) -> dict:
    data = {k: v for k, v in payload.dict(exclude_unset=True).items() if v is not None}  # null: not given
    if "entity" in data:
        data["entity"] = selectors.entity_get(project=obj, name=data["entity"])
    if "source" in data:
        data["source"] = selectors.data_source_get(project=obj, name=data["source"])
    if "owner" in data:
        data["owner"] = _user(data["owner"])
    if "features" in data:
        data["features"] = [f if isinstance(f, str) else f for f in data["features"]]
    return data


@router.get(P + "/feature-views", response=list[FeatureViewOut])
@api_permission("feature.view")
def list_feature_views(request, project: str, page: Query[Page], search: str = "", entity: str = "",
                       owner: str = "", mode: str = "", tag: str = ""):
    """The catalog: current views, filtered by search text, entity, owner, mode (online/batch) and tag."""
    obj = _project(request, project, "feature.view")
    qs = selectors.feature_view_list(project=obj, search=search, entity=entity, owner=owner, mode=mode, tag=tag)
    return [_view_out(v) for v in paginate(request, qs, page)]


@router.post(P + "/feature-views", response={201: FeatureViewOut})
@api_permission("feature.edit")
def create_feature_view(request, project: str, payload: FeatureViewIn):
    obj = _project(request, project, "feature.edit")
    args = _view_args(obj, payload)
    args.setdefault("owner", None)
    view = services.feature_view_create(project=obj, actor=request.auth, **{**payload.dict(), **args})
    located(request, f"/api/v1/projects/{obj.slug}/feature-views/{view.name}")
    return Status(201, _view_out(view))


@router.get(P + "/feature-views/{name}", response=FeatureViewOut)
@api_permission("feature.view")
def get_feature_view(request, project: str, name: str, version: int | None = None):
    return _view_out(selectors.feature_view_get(project=_project(request, project, "feature.view"), name=name,
                                                version=version))


@router.patch(P + "/feature-views/{name}", response=FeatureViewOut)
@api_permission("feature.edit")
def update_feature_view(request, project: str, name: str, payload: FeatureViewPatch):
    """Edit the current version; a view used by a feature set gets a new version instead."""
    obj = _project(request, project, "feature.edit")
    view = selectors.feature_view_get(project=obj, name=name)
    return _view_out(services.feature_view_update(view=view, actor=request.auth, **_view_args(obj, payload)))


@router.post(P + "/feature-views/{name}/materialize", response={202: JobAcceptedOut}, openapi_extra=IDEMPOTENT)
@api_permission("feature.edit")
def materialize_feature_view(request, project: str, name: str, version: int | None = None):
    """Start a materialization job (202): of ``version`` when given, else of every version in use (the
    current one and each one a feature set reads). A retry with the same ``Idempotency-Key`` returns the
    same job."""
    obj = _project(request, project, "feature.edit")
    job = services.feature_view_materialize_request(view=selectors.feature_view_get(project=obj, name=name),
                                                    actor=request.auth, version=version,
                                                    idempotency_key=idempotency_key(request))
    job_location(request, job.pk)
    return Status(202, job_accepted(job))


@router.get(P + "/feature-views/{name}/freshness", response=FreshnessOut)
@api_permission("feature.view")
def feature_view_freshness(request, project: str, name: str):
    view = selectors.feature_view_get(project=_project(request, project, "feature.view"), name=name)
    return services.feature_view_freshness(view=view)


# --- feature sets ---------------------------------------------------------------------------------


@router.get(P + "/feature-sets", response=list[FeatureSetOut])
@api_permission("feature.view")
def list_feature_sets(request, project: str, page: Query[Page]):
    qs = selectors.feature_set_list(project=_project(request, project, "feature.view"))
    return [_set_out(fs) for fs in paginate(request, qs, page)]


@router.post(P + "/feature-sets", response={201: FeatureSetOut})
@api_permission("feature.edit")
def create_feature_set(request, project: str, payload: FeatureSetIn):
    obj = _project(request, project, "feature.edit")
    fs = services.feature_set_create(project=obj, actor=request.auth, name=payload.name, references=payload.features,
                                     description=payload.description)
    located(request, f"/api/v1/projects/{obj.slug}/feature-sets/{fs.name}")
    return Status(201, _set_out(fs))


@router.get(P + "/feature-sets/{name}", response=FeatureSetOut)
@api_permission("feature.view")
def get_feature_set(request, project: str, name: str):
    return _set_out(selectors.feature_set_get(project=_project(request, project, "feature.view"), name=name))


@router.patch(P + "/feature-sets/{name}", response=FeatureSetOut)
@api_permission("feature.edit")
def update_feature_set(request, project: str, name: str, payload: FeatureSetPatch):
    obj = _project(request, project, "feature.edit")
    fs = services.feature_set_update(feature_set=selectors.feature_set_get(project=obj, name=name), actor=request.auth,
                                     references=payload.features, description=payload.description)
    return _set_out(fs)


@router.post(P + "/feature-sets/{name}/online", response=OnlineOut,
             auth=[TokenAuth(cached=True), BrowserSessionAuth()])
@api_permission("feature.view")
def online_lookup(request, project: str, name: str, payload: OnlineIn):
    """Online values for entity keys: per feature its value, event time and status (ok/stale/expired/missing;
    ``stale``: the view's online values lag a newer source version or an edit until re-materialized).

    The hot read path: who may read which set is remembered per process for API_HOT_PATH_CACHE_TTL (1 s).
    """
    fs = selectors.feature_set_for_lookup_cached(user=request.auth, project_slug=project, name=name)
    results = services.online_features_get(feature_set=fs, entity_keys=payload.entity_keys, as_of=payload.as_of)
    return {"feature_set": fs.name, "features": list(results[0]["values"]) if results else [], "results": results}


# --- training sets --------------------------------------------------------------------------------


@router.get(P + "/training-sets", response=list[TrainingSetOut])
@api_permission("feature.view")
def list_training_sets(request, project: str, page: Query[Page]):
    qs = selectors.training_set_list(project=_project(request, project, "feature.view"))
    return [_ts_out(ts) for ts in paginate(request, qs, page)]


@router.post(P + "/training-sets", response={202: TrainingSetOut})
@api_permission("trainingset.build")
def create_training_set(request, project: str, labels: File[UploadedFile],
                        name: Annotated[str, Form(pattern=NAME_PATTERN)], feature_set: Form[str],
                        timestamp_column: Form[str] = "event_timestamp", description: Form[str] = "",
                        null_values: Form[str] = ""):
    """Upload a label file (entity key column(s), event timestamp, label columns); the build runs as a job.

    Key columns are read by their entities' declared types; ``null_values``: extra null tokens."""
    obj = _project(request, project, "trainingset.build")
    fs = selectors.feature_set_get(project=obj, name=feature_set)
    ts = services.training_set_request(project=obj, actor=request.auth, name=name, feature_set=fs,
                                       labels_upload=labels, labels_filename=labels.name,
                                       timestamp_column=timestamp_column, description=description,
                                       null_values=null_values)
    located(request, f"/api/v1/projects/{obj.slug}/training-sets/{ts.name}")
    return Status(202, _ts_out(ts))


@router.get(P + "/training-sets/{name}", response=TrainingSetOut)
@api_permission("feature.view")
def get_training_set(request, project: str, name: str):
    return _ts_out(selectors.training_set_get(project=_project(request, project, "feature.view"), name=name))


@router.get(P + "/training-sets/{name}/download", url_name="features_training_set_download")
@api_permission("feature.view")
def download_training_set(request, project: str, name: str):
    ts = selectors.training_set_get(project=_project(request, project, "feature.view"), name=name)
    if not ts.is_ready:
        raise NotFound(f"Training set {name!r} is not built yet ({ts.status})")
    return FileResponse(artifact_store().open(ts.artifact_key), as_attachment=True, filename=f"{ts.name}.parquet",
                        content_type="application/vnd.apache.parquet")

from uuid import UUID

from django.shortcuts import get_object_or_404
from ninja import Query, Router, Status

from apps.common.schemas import Page, located, paginate

from .access import api_permission
from .models import ApiToken, Membership
from .schemas import (
    AuditEventOut,
    JobOut,
    MemberIn,
    MemberOut,
    MemberPatch,
    ProjectIn,
    ProjectOut,
    ProjectPatch,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
)
from .selectors import (
    api_token_list_for_user,
    audit_event_list,
    job_get_for_user,
    membership_list,
    project_get_for_user,
    project_list_for_user,
    user_get_by_username,
)
from .services import (
    api_token_create,
    api_token_revoke,
    job_cancel,
    membership_add,
    membership_change_role,
    membership_remove,
    project_archive,
    project_create,
    project_update,
)

router = Router(tags=["projects"])


def _project_out(project, user) -> dict:
    from .permissions import project_role

    return {**ProjectOut.from_orm(project).dict(), "role": project_role(user, project)}


@router.get("/projects", response=list[ProjectOut])
@api_permission("authenticated")
def list_projects(request, page: Query[Page], search: str = "", include_archived: bool = False):
    qs = project_list_for_user(user=request.auth, include_archived=include_archived, search=search)
    return [_project_out(p, request.auth) for p in paginate(request, qs, page)]


@router.post("/projects", response={201: ProjectOut})
@api_permission("authenticated")
def create_project(request, payload: ProjectIn):
    project = project_create(actor=request.auth, name=payload.name, slug=payload.slug, description=payload.description)
    located(request, f"/api/v1/projects/{project.slug}")
    return Status(201, _project_out(project, request.auth))


@router.get("/projects/{project}", response=ProjectOut)
@api_permission("project.view")
def get_project(request, project: str):
    return _project_out(project_get_for_user(user=request.auth, slug=project), request.auth)


@router.patch("/projects/{project}", response=ProjectOut)
@api_permission("project.edit")
def update_project(request, project: str, payload: ProjectPatch):
    obj = project_get_for_user(user=request.auth, slug=project, action="project.edit")
    obj = project_update(project=obj, actor=request.auth, name=payload.name, description=payload.description)
    if payload.archived is not None:
        obj = project_archive(project=obj, actor=request.auth, archived=payload.archived)
    return _project_out(obj, request.auth)


@router.get("/projects/{project}/members", response=list[MemberOut])
@api_permission("member.view")
def list_members(request, project: str, page: Query[Page]):
    obj = project_get_for_user(user=request.auth, slug=project, action="member.view")
    return [{"username": m.user.username, "role": m.role, "created_at": m.created_at}
            for m in paginate(request, membership_list(project=obj), page)]


@router.post("/projects/{project}/members", response={201: MemberOut})
@api_permission("member.manage")
def add_member(request, project: str, payload: MemberIn):
    obj = project_get_for_user(user=request.auth, slug=project, action="member.manage")
    m = membership_add(project=obj, actor=request.auth, user=user_get_by_username(username=payload.username), role=payload.role)
    located(request, f"/api/v1/projects/{obj.slug}/members/{m.user.username}")
    return Status(201, {"username": m.user.username, "role": m.role, "created_at": m.created_at})


@router.patch("/projects/{project}/members/{username}", response=MemberOut)
@api_permission("member.manage")
def change_member(request, project: str, username: str, payload: MemberPatch):
    obj = project_get_for_user(user=request.auth, slug=project, action="member.manage")
    m = get_object_or_404(Membership, project=obj, user__username=username)
    m = membership_change_role(membership=m, actor=request.auth, role=payload.role)
    return {"username": m.user.username, "role": m.role, "created_at": m.created_at}


@router.delete("/projects/{project}/members/{username}", response={204: None})
@api_permission("member.manage")
def remove_member(request, project: str, username: str):
    obj = project_get_for_user(user=request.auth, slug=project, action="member.manage")
    membership_remove(membership=get_object_or_404(Membership, project=obj, user__username=username), actor=request.auth)
    return Status(204, None)


@router.get("/projects/{project}/audit", response=list[AuditEventOut])
@api_permission("audit.view")
def list_audit(request, project: str, page: Query[Page], verb: str = "", actor: str = "", target_type: str = ""):
    obj = project_get_for_user(user=request.auth, slug=project, action="audit.view")
    qs = audit_event_list(project=obj, verb=verb, actor=actor, target_type=target_type)
    return list(paginate(request, qs, page))


@router.get("/jobs/{job_id}", response=JobOut)
@api_permission("job.view")
def get_job(request, job_id: UUID):
    """A background job's state; every 202 answer's ``Location`` (and ``status_url``) points here."""
    return job_get_for_user(user=request.auth, job_id=job_id)


@router.post("/jobs/{job_id}/cancel", response={200: JobOut, 202: JobOut})
@api_permission("job.cancel")
def cancel_job(request, job_id: UUID):
    """Cancel a job: 200 when it is cancelled at once (it was queued), 202 when a running job was asked to
    stop (poll it), 409 when it has already ended."""
    job = job_cancel(job=job_get_for_user(user=request.auth, job_id=job_id), actor=request.auth)
    return Status(200 if job.is_final else 202, job)


@router.get("/tokens", response=list[TokenOut])
@api_permission("authenticated")
def list_tokens(request, page: Query[Page]):
    return list(paginate(request, api_token_list_for_user(user=request.auth), page))


@router.post("/tokens", response={201: TokenCreatedOut})
@api_permission("authenticated")
def create_token(request, payload: TokenIn):
    token, plaintext = api_token_create(user=request.auth, name=payload.name)
    located(request, f"/api/v1/tokens/{token.pk}")
    return Status(201, {**TokenOut.from_orm(token).dict(), "token": plaintext})


@router.delete("/tokens/{token_id}", response={204: None})
@api_permission("authenticated")
def revoke_token(request, token_id: int):
    api_token_revoke(token=get_object_or_404(ApiToken, pk=token_id, user=request.auth), actor=request.auth)
    return Status(204, None)

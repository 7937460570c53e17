from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.common.errors import ApplicationError
from apps.common.forms import add_domain_error
from apps.common.htmx import render_job_status

from .access import project_view, public_view, user_view
from .forms import AuditFilterForm, MemberAddForm, MemberRoleForm, ProjectEditForm, ProjectForm, TokenForm
from .models import ApiToken, Job, JobStatus, Membership, Role
from .permissions import can
from .selectors import (
    api_token_list_for_user,
    audit_event_list,
    audit_verbs,
    job_get_for_user,
    membership_list,
    project_list_for_user,
)
from .services import (
    api_token_create,
    api_token_revoke,
    audit_export_request,
    job_cancel,
    membership_add,
    membership_change_role,
    membership_remove,
    project_archive,
    project_create,
    project_update,
)


@public_view
def healthz(request):
    from django.http import JsonResponse

    return JsonResponse({"status": "ok"})


@user_view
def project_list(request):
    search = request.GET.get("q", "").strip()[:100]
    show_archived = request.GET.get("archived") == "1"
    projects = project_list_for_user(user=request.user, include_archived=show_archived, search=search)
    template = "projects/_project_table.html" if request.htmx else "projects/project_list.html"
    return render(request, template, {"projects": projects, "q": search, "show_archived": show_archived})


@user_view
@require_http_methods(["GET", "POST"])
def project_create_view(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create(actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Project “{project.name}” created. You are its owner.")
            return redirect("projects:project-detail", project=project.slug)
    status = 422 if form.errors else 200
    return render(request, "projects/project_form.html", {"form": form}, status=status)


@project_view("project.view")
def project_detail(request, project):
    ctx = {
        "project": project,
        "tab": "overview",
        "members": membership_list(project=project),
        "recent_events": audit_event_list(project=project)[:8],
        "can_edit": can(request.user, project, "project.edit"),
    }
    return render(request, "projects/project_detail.html", ctx)


@project_view("project.edit")
@require_http_methods(["GET", "POST"])
def project_edit(request, project):
    form = ProjectEditForm(request.POST or None, initial={"name": project.name, "description": project.description})
    if request.method == "POST" and form.is_valid():
        try:
            project_update(project=project, actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, "Project saved.")
            return redirect("projects:project-detail", project=project.slug)
    return render(request, "projects/project_edit.html", {"project": project, "form": form, "tab": "settings"},
                  status=422 if form.errors else 200)


@project_view("project.archive")
@require_POST
def project_archive_view(request, project):
    archived = request.POST.get("archived", "1") == "1"
    project_archive(project=project, actor=request.user, archived=archived)
    messages.success(request, f"Project {'archived' if archived else 'restored'}.")
    return redirect("projects:project-detail", project=project.slug)


def _members_context(request, project, form=None, error=None):
    return {
        "project": project,
        "tab": "members",
        "memberships": membership_list(project=project),
        "can_manage": can(request.user, project, "member.manage"),
        "form": form or MemberAddForm(),
        "roles": Role.choices,
        "error": error,
        "usernames": get_user_model().objects.filter(is_active=True).exclude(memberships__project=project)
        .values_list("username", flat=True)[:200] if can(request.user, project, "member.manage") else [],
    }


@project_view("member.view")
def member_list(request, project):
    template = "projects/_members.html" if request.htmx else "projects/members.html"
    return render(request, template, _members_context(request, project))


@project_view("member.manage")
@require_POST
def member_add(request, project):
    form = MemberAddForm(request.POST)
    if form.is_valid():
        user = get_user_model().objects.filter(username=form.cleaned_data["username"].strip(), is_active=True).first()
        if user is None:
            form.add_error("username", f"No active user named “{form.cleaned_data['username']}”.")
        else:
            try:
                membership_add(project=project, actor=request.user, user=user, role=form.cleaned_data["role"])
            except ApplicationError as exc:
                add_domain_error(form, exc)
            else:
                return render(request, "projects/_members.html", _members_context(request, project))
    return render(request, "projects/_members.html", _members_context(request, project, form=form), status=422)


@project_view("member.manage")
@require_POST
def member_role(request, project, membership_id: int):
    membership = get_object_or_404(Membership, pk=membership_id, project=project)
    form = MemberRoleForm(request.POST)
    error = None
    if form.is_valid():
        try:
            membership_change_role(membership=membership, actor=request.user, role=form.cleaned_data["role"])
        except ApplicationError as exc:
            error = exc.message
    else:
        error = "Choose a valid role."
    return render(request, "projects/_members.html", _members_context(request, project, error=error),
                  status=422 if error else 200)


@project_view("member.manage")
@require_POST
def member_remove(request, project, membership_id: int):
    membership = get_object_or_404(Membership, pk=membership_id, project=project)
    error = None
    try:
        membership_remove(membership=membership, actor=request.user)
    except ApplicationError as exc:
        error = exc.message
    return render(request, "projects/_members.html", _members_context(request, project, error=error),
                  status=422 if error else 200)


@project_view("audit.view")
def audit_log(request, project):
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    events = audit_event_list(project=project, **{k: v for k, v in filters.items() if v})
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    ctx = {"project": project, "tab": "audit", "form": form, "page": page, "verbs": audit_verbs(project=project),
           "querystring": request.GET.urlencode()}
    template = "projects/_audit_table.html" if request.htmx else "projects/audit.html"
    return render(request, template, ctx)


@project_view("audit.view")
@require_POST
def audit_export(request, project):
    job = audit_export_request(project=project, actor=request.user)
    return render_job_status(request, job)


@project_view("audit.view")
def audit_export_download(request, project, job_id):
    from django.http import FileResponse

    from apps.common.storage import artifact_store

    job = get_object_or_404(Job, pk=job_id, project=project, kind="audit.export", status=JobStatus.SUCCEEDED)
    response = FileResponse(artifact_store().open(job.result["key"]), as_attachment=True,
                            filename=f"audit-{project.slug}-{job.finished_at:%Y%m%d-%H%M}.csv", content_type="text/csv")
    response["X-Content-Type-Options"] = "nosniff"
    return response


@user_view
def job_status(request, job_id):
    job = job_get_for_user(user=request.user, job_id=job_id)
    return render_job_status(request, job)


@user_view
@require_POST
def job_cancel_view(request, job_id):
    job = job_get_for_user(user=request.user, job_id=job_id)
    try:
        job = job_cancel(job=job, actor=request.user)
    except ApplicationError as exc:
        return render_job_status(request, job, extra={"error": exc.message})
    return render_job_status(request, job)


@user_view
@require_http_methods(["GET", "POST"])
def token_list(request):
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            token, plaintext = api_token_create(user=request.user, name=form.cleaned_data["name"])
            created = {"token": token, "plaintext": plaintext}
            form = TokenForm()
        except ApplicationError as exc:
            add_domain_error(form, exc)
    ctx = {"form": form, "tokens": api_token_list_for_user(user=request.user), "created": created}
    template = "projects/_tokens.html" if request.htmx else "projects/tokens.html"
    return render(request, template, ctx, status=422 if form.errors else 200)


@user_view
@require_POST
def token_revoke(request, token_id: int):
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    api_token_revoke(token=token, actor=request.user)
    ctx = {"form": TokenForm(), "tokens": api_token_list_for_user(user=request.user), "created": None}
    if request.htmx:
        return render(request, "projects/_tokens.html", ctx)
    messages.success(request, "Token revoked.")
    return redirect("projects:token-list")

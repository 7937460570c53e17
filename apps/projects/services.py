"""Every write of the projects app. Each service checks its own rules and writes the audit trail."""

import copy
import csv
import io
import secrets
import time
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.common import rawsql
from apps.common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from apps.common.secrets import secret_hash
from apps.common.tasks import task_send

from .models import ApiToken, AuditEvent, Job, JobStatus, Membership, Project, Role
from .permissions import can

NAME_MAX = 120
SLUG_MAX = 50


# --- audit -------------------------------------------------------------------------------------


def audit_record(*, actor, verb: str, project: Project | None = None, target=None,
                 target_type: str = "", target_label: str = "", details: dict | None = None) -> AuditEvent:
    """The single way anything is written to the audit log."""
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_label = target_label or str(target)[:200]
    return AuditEvent.objects.create(
        project=project,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        verb=verb,
        target_type=target_type,
        target_id=str(getattr(target, "pk", "") or ""),
        target_label=target_label[:200],
        details=details or {},
    )


# --- projects ----------------------------------------------------------------------------------


def _require(user, project: Project, action: str) -> None:
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Name must not be empty", field="name")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"Name must be at most {NAME_MAX} characters (got {len(name)})", field="name")
    return name


def _clean_slug(slug: str, name: str) -> str:
    slug = (slug or "").strip() or slugify(name)[:SLUG_MAX]
    if len(slug) > SLUG_MAX:
        raise InvalidInput(f"Slug must be at most {SLUG_MAX} characters", field="slug")
    if not slug or slugify(slug) != slug:
        raise InvalidInput("Slug may contain only lowercase letters, digits and hyphens", field="slug")
    return slug


@transaction.atomic
def project_create(*, actor, name: str, slug: str = "", description: str = "") -> Project:
    """Any signed-in user may create a project; they become its owner."""
    if not getattr(actor, "is_authenticated", False):
        raise PermissionDenied("Sign in to create a project")
    name = _clean_name(name)
    slug = _clean_slug(slug, name)
    if len(description or "") > 5000:
        raise InvalidInput("Description must be at most 5000 characters", field="description")
    if Project.objects.filter(slug=slug).exists():
        raise Conflict(f"A project with slug {slug!r} already exists", field="slug")
    try:
        with transaction.atomic():
            project = Project.objects.create(name=name, slug=slug, description=description or "", created_by=actor)
    except IntegrityError as exc:  # a concurrent create won the race
        raise Conflict(f"A project with slug {slug!r} already exists", field="slug") from exc
    Membership.objects.create(project=project, user=actor, role=Role.OWNER)
    audit_record(actor=actor, verb="project.create", project=project, target=project, details={"slug": slug})
    return project


@transaction.atomic
def project_update(*, project: Project, actor, name: str | None = None, description: str | None = None) -> Project:
    _require(actor, project, "project.edit")
    changes = {}
    if name is not None and name.strip() != project.name:
        changes["name"] = [project.name, _clean_name(name)]
        project.name = changes["name"][1]
    if description is not None and description != project.description:
        if len(description) > 5000:
            raise InvalidInput("Description must be at most 5000 characters", field="description")
        changes["description"] = True
        project.description = description
    if changes:
        project.save(update_fields=["name", "description", "updated_at"])
        audit_record(actor=actor, verb="project.update", project=project, target=project, details=changes)
    return project


@transaction.atomic
def project_archive(*, project: Project, actor, archived: bool = True) -> Project:
    _require(actor, project, "project.archive")
    if archived == project.is_archived:
        return project
    project.archived_at = timezone.now() if archived else None
    project.save(update_fields=["archived_at", "updated_at"])
    audit_record(actor=actor, verb="project.archive" if archived else "project.unarchive", project=project, target=project)
    return project


def project_settings_update(*, project: Project, actor, values: dict) -> Project:
    """Merge policy values into ``project.settings`` (used by later apps: gates, approvals...)."""
    _require(actor, project, "project.edit")
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        before = {k: project.settings.get(k) for k in values}
        project.settings = {**project.settings, **values}
        project.save(update_fields=["settings", "updated_at"])
        audit_record(actor=actor, verb="project.settings", project=project, target=project,
                     details={"before": before, "after": values})
    return project


# --- members -----------------------------------------------------------------------------------


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}", field="role")
    return role


def _owner_count(project: Project) -> int:
    return project.memberships.filter(role=Role.OWNER).count()


@transaction.atomic
def membership_add(*, project: Project, actor, user, role: str) -> Membership:
    _require(actor, project, "member.manage")
    _check_role(role)
    if user is None or not user.is_active:
        raise NotFound("Unknown or inactive user", field="username")
    if Membership.objects.filter(project=project, user=user).exists():
        raise Conflict(f"{user.username} is already a member of {project.name}", field="username")
    membership = Membership.objects.create(project=project, user=user, role=role)
    audit_record(actor=actor, verb="member.add", project=project, target=membership,
                 target_label=user.username, details={"username": user.username, "role": role})
    return membership


@transaction.atomic
def membership_change_role(*, membership: Membership, actor, role: str) -> Membership:
    project = membership.project
    _require(actor, project, "member.manage")
    _check_role(role)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == role:
        return membership
    if membership.role == Role.OWNER and _owner_count(project) <= 1:
        raise Conflict("A project needs at least one owner: make someone else owner first", field="role")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(actor=actor, verb="member.role", project=project, target=membership,
                 target_label=membership.user.username,
                 details={"username": membership.user.username, "from": old, "to": role})
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor) -> None:
    project = membership.project
    _require(actor, project, "member.manage")
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Role.OWNER and _owner_count(project) <= 1:
        raise Conflict("A project needs at least one owner: the last owner cannot be removed")
    username = membership.user.username
    audit_record(actor=actor, verb="member.remove", project=project, target_type="membership",
                 target_label=username, details={"username": username, "role": membership.role})
    membership.delete()


# --- API tokens --------------------------------------------------------------------------------

TOKEN_PREFIX = "slw_"


_token_hash = secret_hash


@transaction.atomic
def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """Create a personal token. Returns (token, plaintext); the plaintext is never stored."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the token a name", field="name")
    if len(name) > 80:
        raise InvalidInput("Token name must be at most 80 characters", field="name")
    prefix = secrets.token_hex(4)
    plaintext = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(user=user, name=name, prefix=prefix, token_hash=_token_hash(plaintext))
    audit_record(actor=user, verb="token.create", target=token, details={"prefix": prefix})
    return token, plaintext


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor) -> ApiToken:
    if token.user_id != actor.pk:
        raise NotFound("Token not found")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, verb="token.revoke", target=token, details={"prefix": token.prefix})
    return token


_USER_COLUMNS = frozenset({"id", "username", "first_name", "last_name", "email", "is_staff", "is_superuser",
                           "is_active"})
_TOKEN_SQL: dict[str, tuple] = {}


def _token_sql() -> tuple:
    """(user fields, SQL) for the token lookup, built once per database vendor."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    hit = _TOKEN_SQL.get(connection.vendor)
    if hit is None:
        user_model = get_user_model()
        fields, cols = rawsql.columns(user_model, _USER_COLUMNS, "u")
        qn = connection.ops.quote_name
        sql = (f"SELECT t.{qn('id')}, t.{qn('last_used_at')}, {cols} FROM {rawsql.table(ApiToken)} t "
               f"JOIN {rawsql.table(user_model)} u ON u.{qn(user_model._meta.pk.column)} = t.{qn('user_id')} "
               f"WHERE t.{qn('token_hash')} = %s AND t.{qn('revoked_at')} IS NULL AND u.{qn('is_active')} = %s")
        hit = _TOKEN_SQL[connection.vendor] = (fields, sql)
    return hit


def api_token_authenticate(*, plaintext: str):
    """The active user owning ``plaintext``, or None. Updates last-used at most once a minute.

    Every API call pays for this, so it is one hand-written query (apps.common.rawsql); the user comes
    back with its identity and flag columns loaded and the rest (password, dates) deferred.
    """
    if not plaintext or not plaintext.startswith(TOKEN_PREFIX):
        return None
    fields, sql = _token_sql()
    row = rawsql.fetch_one(sql, [_token_hash(plaintext), True])
    if row is None:
        return None
    token_id, last_used = row[0], rawsql.aware(row[1])
    user = rawsql.partial(fields[0].model, fields, row[2:])
    now = timezone.now()
    if last_used is None or (now - last_used).total_seconds() > 60:
        ApiToken.objects.filter(pk=token_id).update(last_used_at=now)
    return user


_TOKEN_CACHE: dict[str, tuple[float, object]] = {}


def api_token_authenticate_cached(*, plaintext: str):
    """``api_token_authenticate`` remembered per process for ``API_HOT_PATH_CACHE_TTL`` seconds (1 s).

    Only hot read paths use it (the online feature lookup): a revoked token or a deactivated user is
    refused there within that time, everywhere else at once. Unknown tokens are never remembered.
    Each call gets its own copy of the user (per-request attributes such as cached roles never leak).
    """
    ttl = settings.API_HOT_PATH_CACHE_TTL
    if ttl <= 0:
        return api_token_authenticate(plaintext=plaintext)
    key = _token_hash(plaintext) if plaintext else ""
    now = time.monotonic()
    hit = _TOKEN_CACHE.get(key)
    if hit is not None and hit[0] > now:
        user = copy.copy(hit[1])
        user.__dict__.pop("_slipway_roles", None)
        return user
    user = api_token_authenticate(plaintext=plaintext)
    if user is not None:
        if len(_TOKEN_CACHE) > 10_000:
            _TOKEN_CACHE.clear()
        _TOKEN_CACHE[key] = (now + ttl, copy.copy(user))
    return user


# --- jobs --------------------------------------------------------------------------------------


def job_create(*, kind: str, actor=None, project: Project | None = None, title: str = "",
               params: dict | None = None, task: str | Callable | None = None,
               idempotency_key: str | None = None, target_url: str = "", queue: str | None = None) -> Job:
    """Create a Job row and enqueue ``task`` (a Celery task or its name) with the job id after commit.

    With an ``idempotency_key`` a repeated call returns the first job instead of starting another.
    """
    if idempotency_key:
        existing = Job.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    with transaction.atomic():
        job = Job.objects.create(
            kind=kind, project=project, title=title or kind, params=params or {},
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            idempotency_key=idempotency_key, target_url=target_url,
        )
        if task is not None:
            transaction.on_commit(partial(job_enqueue, job_id=str(job.pk), task=task, queue=queue))
    return job


def job_enqueue(*, job_id: str, task, queue: str | None = None) -> None:
    if isinstance(task, str):
        task_send(task, job_id, queue=queue)
    else:
        task.apply_async(args=[job_id], **({"queue": queue} if queue else {}))


def job_start(*, job_id) -> Job | None:
    """Mark a job running. Returns None when the job is already final (a redelivered message)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_final:
            return None
        if job.cancel_requested:
            job.status = JobStatus.CANCELLED
            job.finished_at = timezone.now()
            job.message = "Cancelled before it started"
            job.save(update_fields=["status", "finished_at", "message"])
            return None
        job.status = JobStatus.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.attempts += 1
        job.save(update_fields=["status", "started_at", "attempts"])
    return job


class JobCancelled(Exception):
    pass


def job_progress(*, job: Job, progress: int, message: str = "") -> None:
    """Record progress (0-100). Raises JobCancelled when someone asked to cancel the job."""
    progress = max(0, min(100, int(progress)))
    Job.objects.filter(pk=job.pk).update(progress=progress, message=message[:500])
    job.progress, job.message = progress, message[:500]
    if Job.objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise JobCancelled()


def job_succeed(*, job: Job, result: dict | None = None, message: str = "Done", target_url: str = "") -> None:
    fields = {"status": JobStatus.SUCCEEDED, "progress": 100, "message": message[:500],
              "result": result or {}, "finished_at": timezone.now()}
    if target_url:
        fields["target_url"] = target_url
    Job.objects.filter(pk=job.pk).update(**fields)


def job_fail(*, job_id, error: str, status: str = JobStatus.FAILED) -> None:
    Job.objects.filter(pk=job_id).exclude(status__in=Job.FINAL).update(
        status=status, error=error[:5000], message=("Cancelled" if status == JobStatus.CANCELLED else "Failed")[:500],
        finished_at=timezone.now(),
    )


def job_run(*, job_id, body: Callable[[Job], dict | None]) -> None:
    """Run ``body(job)`` under job tracking: running → succeeded, or failed with its error message.

    Used by every worker task. Domain errors become the job's error message; unexpected errors too
    (with their type), so a job never stays "running" after its task ended.
    """
    job = job_start(job_id=job_id)
    if job is None:
        return
    try:
        result = body(job) or {}
    except JobCancelled:
        job_fail(job_id=job.pk, error="Cancelled by user", status=JobStatus.CANCELLED)
        return
    except Exception as exc:  # noqa: BLE001 - the job must end in a final state
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        job_fail(job_id=job.pk, error=message)
        if not isinstance(exc, (InvalidInput, NotFound, Conflict, PermissionDenied)):
            raise
        return
    job.refresh_from_db(fields=["status"])
    if not job.is_final:
        job_succeed(job=job, result=result if isinstance(result, dict) else {"value": result})


@transaction.atomic
def job_cancel(*, job: Job, actor) -> Job:
    if job.project is not None:
        _require(actor, job.project, "job.cancel")
    elif job.created_by_id != actor.pk:
        raise PermissionDenied("Only the person who started this job may cancel it")
    if job.is_final:
        raise Conflict(f"The job already ended ({job.status})")
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    if job.status == JobStatus.QUEUED:
        job_fail(job_id=job.pk, error="Cancelled by user", status=JobStatus.CANCELLED)
    if job.project is not None:
        audit_record(actor=actor, verb="job.cancel", project=job.project, target=job, target_label=job.title)
    job.refresh_from_db()
    return job


# --- audit export (a real background job; also the foundation's worker test) --------------------


def audit_export_request(*, project: Project, actor) -> Job:
    from django.urls import reverse

    _require(actor, project, "audit.view")
    job = job_create(kind="audit.export", actor=actor, project=project, title=f"Export audit log of {project.name}",
                     params={"project_id": project.pk}, task="workers.projects.audit_export_run")
    job.target_url = reverse("projects:audit-export-download", args=[project.slug, job.pk])
    Job.objects.filter(pk=job.pk).update(target_url=job.target_url)
    return job


def audit_export_run(*, job: Job) -> dict:
    """Write the project's audit log as CSV into artifact storage, reporting progress."""
    from apps.common.storage import artifact_store

    project = Project.objects.filter(pk=job.params.get("project_id")).first()
    if project is None:
        raise NotFound("The project of this export no longer exists")
    events = list(project.audit_events.select_related("actor").order_by("created_at", "id"))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["time", "actor", "verb", "target_type", "target", "details"])
    total = max(len(events), 1)
    for i, ev in enumerate(events, 1):
        writer.writerow([ev.created_at.isoformat(), ev.actor.username if ev.actor else "",
                         ev.verb, ev.target_type, csv_safe(ev.target_label), csv_safe(str(ev.details))])
        if i % 500 == 0:
            job_progress(job=job, progress=int(90 * i / total), message=f"{i} of {len(events)} events")
    stored = artifact_store().put_bytes(buf.getvalue().encode(), suffix=".csv")
    return {"rows": len(events), "sha256": stored.sha256, "key": stored.key, "size": stored.size}


def csv_safe(value: str) -> str:
    """Neutralise spreadsheet formula injection: cells starting with = + - @ tab or CR get a quote."""
    if value and value[0] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value

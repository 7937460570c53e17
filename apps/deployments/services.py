"""Every write of the deployments app: deploy, pause/resume, version changes, owners, API keys, and the
prediction-log maintenance (drain, prune). Each service checks permission and writes the audit trail."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from apps.common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from apps.common.tasks import task_send_on_commit
from apps.projects.models import Membership, Project
from apps.projects.permissions import can
from apps.projects.services import audit_record

from . import contract as C
from . import hooks
from .models import (
    Deployment,
    DeploymentApiKey,
    DeploymentEvent,
    DeploymentStatus,
    InputMode,
    PredictionLog,
    PredictionMinuteStat,
    ServingGeneration,
)
from .serving import KEY_PREFIX, key_hash

SLUG_MAX = 60


def _require(user, project: Project, action: str) -> None:
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")


def serving_generation_bump() -> None:
    """Tell every serving process to reload (called inside the transaction of the change)."""
    updated = ServingGeneration.objects.filter(pk=1).update(value=F("value") + 1)
    if not updated:
        ServingGeneration.objects.get_or_create(pk=1, defaults={"value": 1})


def _check_version(project: Project, version):
    from apps.registry.models import VersionStatus

    if version is None:
        raise InvalidInput("Choose a model version", field="version")
    if version.model.project_id != project.pk:
        raise NotFound("No such model version in this project", field="version")
    if version.status != VersionStatus.READY:
        raise InvalidInput(f"{version} is {version.status}: only a ready version can serve", field="version")
    try:
        C.Contract.from_spec(version.model.input_contract or [])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{version.model.name} cannot be served: {exc}", field="version") from exc
    if not version.model.input_contract:
        raise InvalidInput(f"{version.model.name} has no input contract", field="version")
    return version


def _check_entity_mode(model) -> None:
    feature_set = getattr(model, "feature_set", None)
    if feature_set is None:
        raise InvalidInput(f"{model.name} has no feature set, so it cannot look features up by entity key; "
                           "use features given inline", field="input_mode")
    try:
        from apps.features.services import feature_set_online_check
    except ImportError:  # the feature store's service is not there: use the model's own flag
        feature_set_online_check = None
    if feature_set_online_check is not None:
        feature_set_online_check(feature_set=feature_set)
        return
    batch_only = feature_set.batch_only_features() if callable(getattr(feature_set, "batch_only_features", None)) \
        else []
    if batch_only:
        raise InvalidInput(f"Feature set {feature_set} uses batch-only feature(s) {', '.join(batch_only)}: "
                           "they are not served online, so it cannot back a deployment by entity key",
                           field="input_mode")


def _check_owner(project: Project, owner):
    if owner is None:
        return None
    if not Membership.objects.filter(project=project, user=owner).exists():
        raise InvalidInput(f"{owner.username} is not a member of {project.name}", field="owner")
    return owner


def _clean_slug(slug: str, fallback: str) -> str:
    slug = (slug or "").strip() or slugify(fallback)[:SLUG_MAX]
    if not slug or slugify(slug) != slug or len(slug) > SLUG_MAX:
        raise InvalidInput(f"Slug may contain only lowercase letters, digits and hyphens (at most {SLUG_MAX})",
                           field="slug")
    return slug


def deployment_create(*, project: Project, actor, version, slug: str = "", name: str = "", owner=None,
                      input_mode: str = InputMode.INLINE, max_batch: int | None = None, go_live: bool = True,
                      reason: str = "", override_reason: str = "") -> Deployment:
    """Deploy a ready version under a portal-wide unique slug. Live at once when it has an owner."""
    _require(actor, project, "deployment.manage")
    version = _check_version(project, version)
    name = (name or "").strip() or (slug or version.model.name)
    if len(name) > 120:
        raise InvalidInput("Name must be at most 120 characters", field="name")
    slug = _clean_slug(slug, name)
    if input_mode not in InputMode.values:
        raise InvalidInput(f"Unknown input mode {input_mode!r}", field="input_mode")
    if input_mode == InputMode.ENTITY:
        _check_entity_mode(version.model)
    owner = _check_owner(project, owner)
    if go_live and owner is None:
        raise InvalidInput("A deployment without an owner cannot go live: choose an owner", field="owner")
    max_batch = settings.SERVING_MAX_BATCH if max_batch is None else int(max_batch)
    if not 1 <= max_batch <= settings.SERVING_MAX_BATCH:
        raise InvalidInput(f"The batch limit must be between 1 and {settings.SERVING_MAX_BATCH}", field="max_batch")
    if Deployment.objects.filter(slug=slug).exists():
        raise Conflict(f"The deployment slug {slug!r} is taken (slugs are unique across the portal)", field="slug")
    override = ""
    if go_live:  # promotion policy: a first version goes live through an approved request or an owner override
        override = hooks.go_live_check(project=project, actor=actor, override_reason=override_reason)
    with transaction.atomic():
        try:
            with transaction.atomic():
                dep = Deployment.objects.create(
                    project=project, slug=slug, name=name, registered_model=version.model,
                    production_version=version, owner=owner, input_mode=input_mode, max_batch=max_batch,
                    status=DeploymentStatus.LIVE if go_live else DeploymentStatus.PAUSED, created_by=actor)
        except IntegrityError as exc:
            raise Conflict(f"The deployment slug {slug!r} is taken (slugs are unique across the portal)",
                           field="slug") from exc
        DeploymentEvent.objects.create(deployment=dep, kind=DeploymentEvent.Kind.DEPLOY, version=version,
                                       reason=reason or "Initial deployment", actor=actor)
        audit_record(actor=actor, verb="deployment.deploy", project=project, target=dep,
                     details={"slug": slug, "version": str(version), "version_id": version.pk,
                              "input_mode": input_mode, "live": go_live,
                              "owner": owner.username if owner else None})
        if override:
            audit_record(actor=actor, verb="deployment.first_version_override", project=project, target=dep,
                         details={"version": str(version), "reason": override})
        serving_generation_bump()
        _monitoring_start(dep)
    return dep


def _monitoring_start(dep: Deployment) -> None:
    """Monitoring (above this app) prepares for the new production version: CBPE calibration from its
    holdout, count windows. Best effort: the monitoring tick works without it."""
    task_send_on_commit("workers.monitoring.monitoring_start", dep.pk, best_effort=True)


def deployment_never_live(deployment: Deployment) -> bool:
    """Created paused and never resumed: its production version has not answered a request yet."""
    return (not deployment.is_live
            and not deployment.events.filter(kind__in=(DeploymentEvent.Kind.RESUME, DeploymentEvent.Kind.PAUSE))
            .exists())


def _locked(deployment: Deployment) -> Deployment:
    return Deployment.objects.select_for_update().select_related("project", "production_version").get(
        pk=deployment.pk)


def deployment_pause(*, deployment: Deployment, actor, reason: str = "") -> Deployment:
    _require(actor, deployment.project, "deployment.manage")
    reason = (reason or "").strip()[:300]
    with transaction.atomic():
        dep = _locked(deployment)
        if dep.status == DeploymentStatus.PAUSED:
            raise Conflict(f"{dep.slug} is already paused")
        dep.status, dep.status_message = DeploymentStatus.PAUSED, reason
        dep.save(update_fields=["status", "status_message", "updated_at"])
        DeploymentEvent.objects.create(deployment=dep, kind=DeploymentEvent.Kind.PAUSE,
                                       version=dep.production_version, reason=reason, actor=actor)
        audit_record(actor=actor, verb="deployment.pause", project=dep.project, target=dep, details={"reason": reason})
        serving_generation_bump()
    return dep


def deployment_resume(*, deployment: Deployment, actor, action: str = "deployment.manage", reason: str = "",
                      override_reason: str = "") -> Deployment:
    """Go live again. Promotion calls it with ``action="promotion.review"`` when approving a first version."""
    _require(actor, deployment.project, action)
    with transaction.atomic():
        dep = _locked(deployment)
        if dep.status == DeploymentStatus.LIVE:
            raise Conflict(f"{dep.slug} is already live")
        override = ""
        if action == "deployment.manage" and deployment_never_live(dep):
            override = hooks.go_live_check(project=dep.project, actor=actor, override_reason=override_reason)
        if override:
            audit_record(actor=actor, verb="deployment.first_version_override", project=dep.project, target=dep,
                         details={"version": str(dep.production_version), "reason": override})
        if dep.owner_id is None:
            raise InvalidInput("A deployment without an owner cannot go live: choose an owner first", field="owner")
        _check_version(dep.project, dep.production_version)
        dep.status, dep.status_message = DeploymentStatus.LIVE, ""
        dep.save(update_fields=["status", "status_message", "updated_at"])
        DeploymentEvent.objects.create(deployment=dep, kind=DeploymentEvent.Kind.RESUME,
                                       version=dep.production_version, actor=actor,
                                       reason=(reason or (f"Owner override: {override}" if override else ""))[:500])
        audit_record(actor=actor, verb="deployment.resume", project=dep.project, target=dep)
        serving_generation_bump()
    return dep


def deployment_owner_set(*, deployment: Deployment, actor, owner) -> Deployment:
    _require(actor, deployment.project, "deployment.manage")
    with transaction.atomic():
        dep = _locked(deployment)
        if owner is None and dep.status == DeploymentStatus.LIVE:
            raise InvalidInput("A live deployment must keep an owner: pause it first", field="owner")
        owner = _check_owner(dep.project, owner)
        before = dep.owner.username if dep.owner else None
        dep.owner = owner
        dep.save(update_fields=["owner", "updated_at"])
        DeploymentEvent.objects.create(deployment=dep, kind=DeploymentEvent.Kind.OWNER,
                                       version=dep.production_version, actor=actor,
                                       reason=f"{before or 'nobody'} → {owner.username if owner else 'nobody'}")
        audit_record(actor=actor, verb="deployment.owner", project=dep.project, target=dep,
                     details={"from": before, "to": owner.username if owner else None})
    return dep


def deployment_version_set(*, deployment: Deployment, actor, version, reason: str = "",
                           kind: str = DeploymentEvent.Kind.VERSION, action: str = "deployment.manage",
                           details: dict | None = None) -> Deployment:
    """Switch the production version atomically; every serving process uses it within ~1 s.

    Promotion and rollback call this with their own ``kind`` and ``action`` (e.g. "promotion.review",
    "deployment.rollback") after checking their own rules.
    """
    _require(actor, deployment.project, action)
    if kind == DeploymentEvent.Kind.VERSION:  # direct switches: only while the project does not promote by request
        hooks.version_switch_check(project=deployment.project)
    with transaction.atomic():
        dep = _locked(deployment)
        version = _check_version(dep.project, version)
        if version.model_id != dep.registered_model_id:
            raise InvalidInput(f"{version} is not a version of {dep.registered_model.name}", field="version")
        previous = dep.production_version
        if previous.pk == version.pk:
            raise Conflict(f"{version} is already the production version of {dep.slug}", field="version")
        dep.production_version = version
        dep.save(update_fields=["production_version", "updated_at"])
        DeploymentEvent.objects.create(deployment=dep, kind=kind, version=version, previous_version=previous,
                                       reason=(reason or "")[:500], actor=actor)
        audit_record(actor=actor, verb=f"deployment.{kind}", project=dep.project, target=dep,
                     details={"from": str(previous), "to": str(version), "from_id": previous.pk,
                              "to_id": version.pk, "reason": reason, **(details or {})})
        serving_generation_bump()
        _monitoring_start(dep)
    return dep


# --- API keys ------------------------------------------------------------------------------------


def deployment_api_key_create(*, deployment: Deployment, actor, name: str) -> tuple[DeploymentApiKey, str]:
    """Create a key; returns (key, plaintext). The plaintext is shown once and never stored."""
    _require(actor, deployment.project, "deployment.keys")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the key a name (which service uses it?)", field="name")
    if len(name) > 80:
        raise InvalidInput("Key name must be at most 80 characters", field="name")
    prefix = secrets.token_hex(5)
    plaintext = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = DeploymentApiKey.objects.create(deployment=deployment, name=name, prefix=prefix,
                                              key_hash=key_hash(plaintext), created_by=actor)
        audit_record(actor=actor, verb="deployment.key_create", project=deployment.project, target=key,
                     target_label=f"{deployment.slug}: {name}", details={"prefix": prefix})
        serving_generation_bump()
    return key, plaintext


def deployment_api_key_revoke(*, key: DeploymentApiKey, actor) -> DeploymentApiKey:
    deployment = key.deployment
    _require(actor, deployment.project, "deployment.keys")
    with transaction.atomic():
        key = DeploymentApiKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is not None:
            raise Conflict("This key is already revoked")
        key.revoked_at, key.revoked_by = timezone.now(), actor
        key.save(update_fields=["revoked_at", "revoked_by"])
        audit_record(actor=actor, verb="deployment.key_revoke", project=deployment.project, target=key,
                     target_label=f"{deployment.slug}: {key.name}", details={"prefix": key.prefix})
        serving_generation_bump()
    return key


# --- prediction log maintenance ------------------------------------------------------------------


def prediction_log_drain() -> int:
    """Move spooled predictions of this host into the database (the beat task; idempotent)."""
    from . import logpipe

    return logpipe.drain()


def prediction_log_prune(*, now=None) -> int:
    """Delete log rows and minute statistics older than SERVING_LOG_RETENTION_DAYS."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SERVING_LOG_RETENTION_DAYS)
    deleted = 0
    # Per deployment, so the (deployment, created_at) index finds the old rows (no index on time alone).
    for dep_id in Deployment.objects.values_list("pk", flat=True):
        while True:
            ids = list(PredictionLog.objects.filter(deployment_id=dep_id, created_at__lt=cutoff)
                       .values_list("pk", flat=True)[:10_000])
            if not ids:
                break
            deleted += PredictionLog.objects.filter(pk__in=ids).delete()[0]
    PredictionMinuteStat.objects.filter(minute__lt=cutoff).delete()
    return deleted

"""Every write of the registry. Each service checks permissions and rules and writes the audit trail."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.urls import reverse
from django.utils import timezone

from apps.common.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    UnsupportedMediaType,
)
from apps.common.storage import artifact_store
from apps.projects.models import Job, Project
from apps.projects.permissions import can
from apps.projects.services import audit_record, job_create, job_progress

from . import contract as spec
from .models import ModelTask, ModelVersion, RegisteredModel, VersionStatus
from .sniff import HEAD_BYTES, SniffError, sniff_model_format, sniff_table_format

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
CONTRACT_TYPES = spec.TYPES
MAX_FEATURES = spec.MAX_FEATURES
MAX_TAGS = 30


def _require(actor, project: Project, action: str) -> None:
    if not can(actor, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")
    if project.is_archived and not action.endswith(".view"):
        raise Conflict(f"{project.name} is archived")


# --- validation of inputs ---------------------------------------------------------------------


INFER = "infer"


def clean_contract(contract) -> list[dict]:
    """The canonical typed contract (apps.registry.contract): names unique and valid, types float, int,
    bool, string, datetime; nullable; categories and the unknown-category policy."""
    if isinstance(contract, str):
        try:
            contract = parse_contract_text(contract)
        except spec.ContractSpecError as exc:
            raise InvalidInput(str(exc), field="input_contract") from exc
    try:
        return spec.normalize_contract(contract)
    except spec.ContractSpecError as exc:
        raise InvalidInput(str(exc), field="input_contract") from exc


def parse_contract_text(text: str) -> list[dict]:
    """A JSON list, or ``name:type`` one per line (or comma separated on one line); a bare name is float."""
    return spec.parse_contract_text(text)


def clean_filename(name: str | None, *, field: str = "artifact") -> str:
    """The user's file name is only a label; names with folders or control characters are refused."""
    name = (name or "").strip()
    if not name:
        return "upload"
    if "/" in name or "\\" in name or name.startswith("..") or any(ord(ch) < 32 for ch in name) or name in (".",):
        raise InvalidInput("The file name must be a plain file name without folders or special characters",
                           field=field)
    return name[:255]


def _clean_tags(tags) -> list[str]:
    if isinstance(tags, str):
        tags = [t for t in re.split(r"[,\s]+", tags) if t]
    tags = [str(t).strip()[:40] for t in (tags or []) if str(t).strip()]
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"At most {MAX_TAGS} tags", field="tags")
    return list(dict.fromkeys(tags))


def _clean_metrics(metrics) -> dict:
    if not metrics:
        return {}
    if not isinstance(metrics, dict) or len(metrics) > 100:
        raise InvalidInput("Metrics must be an object of at most 100 name: number pairs", field="uploader_metrics")
    out = {}
    for key, value in metrics.items():
        try:
            out[str(key)[:60]] = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"Metric {key!r} must be a number", field="uploader_metrics") from exc
    return out


# --- registered models ------------------------------------------------------------------------


def registered_model_create(*, project: Project, actor, name: str, task: str, input_contract,
                            description: str = "", feature_set=None) -> RegisteredModel:
    _require(actor, project, "model.upload")
    name = (name or "").strip().lower()
    if not NAME_RE.match(name):
        raise InvalidInput("Use lowercase letters, digits, '-' or '_' (up to 80 characters)", field="name")
    if task not in ModelTask.values:
        raise InvalidInput(f"Task must be one of {', '.join(ModelTask.values)}", field="task")
    infer = isinstance(input_contract, str) and input_contract.strip().lower() == INFER
    if feature_set is not None:
        if feature_set.project_id != project.pk:
            raise InvalidInput("The feature set belongs to another project", field="feature_set")
        if not input_contract or infer:
            input_contract, infer = feature_set_contract(feature_set), False
    # "infer": the contract is read from the first uploaded version (its model and data files)
    contract = [] if infer else clean_contract(input_contract)
    if feature_set is not None:
        fs_names = [c["name"] for c in feature_set_contract(feature_set)]
        if [c["name"] for c in contract] != fs_names:
            raise InvalidInput("The input contract must list the feature set's output names in order: "
                               + ", ".join(fs_names), field="input_contract")
    if len(description or "") > 5000:
        raise InvalidInput("Description must be at most 5000 characters", field="description")
    if RegisteredModel.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A model named {name!r} already exists in {project.name}", field="name")
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(project=project, name=name, task=task, input_contract=contract,
                                                   description=description or "", feature_set=feature_set,
                                                   created_by=actor)
            audit_record(actor=actor, verb="model.create", project=project, target=model,
                         details={"task": task, "features": len(contract), "contract": "infer" if infer else "declared",
                                  "feature_set": feature_set.name if feature_set else None})
    except IntegrityError as exc:
        raise Conflict(f"A model named {name!r} already exists in {project.name}", field="name") from exc
    return model


def feature_set_contract(feature_set) -> list[dict]:
    """The contract of a feature-store feature set: its output names in order, typed from the features."""
    mapping = {"float": "float", "double": "float", "int": "int", "integer": "int", "bool": "bool",
               "boolean": "bool", "str": "string", "string": "string", "category": "string", "datetime": "datetime"}
    out = []
    for item in feature_set.ordered_items:
        vt = str(getattr(item.feature, "value_type", "float") or "float").lower()
        out.append({"name": item.output_name, "type": mapping.get(vt, "float")})
    return out


CONTRACT_EDITABLE = ("nullable", "categories", "unknown")


def registered_model_contract_update(*, model: RegisteredModel, actor, input_contract) -> RegisteredModel:
    """Change how the contract treats values — the unknown-category policy (``refuse``/``pass``), the
    known categories, nullability — never the features themselves (names, order, types, categorical):
    the versions were validated and profiled against those. Serving picks the change up within about a
    second (the serving state is invalidated after commit); audited with the changes per feature."""
    _require(actor, model.project, "model.upload")
    if model.is_archived:
        raise Conflict(f"{model.name} is archived")
    if not model.input_contract:
        raise Conflict(f"{model.name} has no contract yet: it is inferred from the first validated version",
                       field="input_contract")
    new = clean_contract(input_contract)
    old = spec.normalize_contract(model.input_contract)
    fixed = [(c["name"], c["type"], bool(c.get("categorical"))) for c in old]
    if [(c["name"], c["type"], bool(c.get("categorical"))) for c in new] != fixed:
        problems = spec.differences(new, old, found_from="the current contract")
        current = {c["name"]: c for c in old}
        for c in new:
            was = current.get(c["name"])
            if was is not None and (was["type"], bool(was.get("categorical"))) != (c["type"],
                                                                                  bool(c.get("categorical"))):
                problems.append(f"{c['name']!r} is {was['type']}{' categorical' if was.get('categorical') else ''}, "
                                f"not {c['type']}{' categorical' if c.get('categorical') else ''}")
        problems = list(dict.fromkeys(problems))
        raise InvalidInput("Only nullable, categories and the unknown-category policy can change (register a new "
                           "model for other features or types): " + "; ".join(problems), field="input_contract")
    _check_pass_against_versions(model, new)
    changes = {}
    for before, after in zip(old, new, strict=True):
        diff = {k: [before.get(k), after.get(k)] for k in CONTRACT_EDITABLE if before.get(k) != after.get(k)}
        if diff:
            changes[after["name"]] = diff
    if not changes:
        return model
    from apps.common.tasks import task_send_on_commit

    with transaction.atomic():
        locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        locked.input_contract = new
        locked.save(update_fields=["input_contract", "updated_at"])
        audit_record(actor=actor, verb="model.contract_update", project=model.project, target=locked,
                     details={"changes": changes})
        # serving reloads a deployment's contract when the serving generation moves
        task_send_on_commit("workers.deployments.serving_generation_bump", best_effort=True)
    model.input_contract = new
    return model


def _check_pass_against_versions(model: RegisteredModel, contract: list[dict]) -> None:
    """``"unknown": "pass"`` promises the model gets the value: refused, naming feature and version, for a
    feature whose validated versions raise on an unseen category (validation's probe:
    ``apps.registry.unknown_probe``; versions validated before the probe existed carry no record)."""
    passing = [c["name"] for c in contract if c.get("unknown") == "pass"]
    if not passing:
        return
    problems = []
    for v in model.versions.filter(status__in=[VersionStatus.READY, VersionStatus.ARCHIVED]).order_by("version"):
        refused = set(((v.validation_report or {}).get("unknown_categories") or {}).get("refused_by_model") or ())
        for name in passing:
            if name in refused:
                problems.append(f"{name!r} cannot let unknown categories through (\"unknown\": \"pass\"): v{v.version} "
                                "refuses them (its encoder raises on an unseen value, e.g. "
                                "OneHotEncoder(handle_unknown=\"error\"))")
    if problems:
        raise InvalidInput("; ".join(problems), field="input_contract")


@transaction.atomic
def registered_model_archive(*, model: RegisteredModel, actor, archived: bool = True) -> RegisteredModel:
    _require(actor, model.project, "model.archive")
    if archived == model.is_archived:
        return model
    model.archived_at = timezone.now() if archived else None
    model.save(update_fields=["archived_at", "updated_at"])
    audit_record(actor=actor, verb="model.archive" if archived else "model.unarchive", project=model.project,
                 target=model)
    return model


# --- versions ---------------------------------------------------------------------------------


def _head(fileobj) -> bytes:
    pos = fileobj.tell() if hasattr(fileobj, "tell") else 0
    head = fileobj.read(HEAD_BYTES)
    fileobj.seek(pos)
    return head


def _size(fileobj) -> int | None:
    size = getattr(fileobj, "size", None)
    if size is None and hasattr(fileobj, "seek"):
        pos = fileobj.tell()
        fileobj.seek(0, 2)
        size = fileobj.tell()
        fileobj.seek(pos)
    return size


def _store_upload(fileobj, *, field: str, label: str, kind: str):
    """Size + content checks, then store. Returns (stored, format). Leaves nothing behind on error."""
    limit = settings.UPLOAD_MAX_BYTES
    size = _size(fileobj)
    if size is not None and size > limit:
        raise PayloadTooLarge(f"The {label} is {size:,} bytes, above the limit of {limit:,} bytes", field=field)
    if size == 0:
        raise InvalidInput(f"The {label} is empty (0 bytes)", field=field)
    head = _head(fileobj)
    try:
        fmt = sniff_model_format(head) if kind == "model" else sniff_table_format(head)
    except SniffError as exc:
        cls = InvalidInput if "empty" in str(exc) else UnsupportedMediaType
        raise cls(str(exc) if kind == "model" else f"The {label}: {exc}", field=field) from exc
    try:
        stored = artifact_store().put_stream(fileobj, suffix=f".{fmt}" if kind == "model" else "", max_bytes=limit)
    except PayloadTooLarge as exc:
        raise PayloadTooLarge(f"The {label} is larger than the limit of {limit:,} bytes", field=field) from exc
    return stored, fmt


def _key_in_use(key: str, *, exclude_pk=None) -> bool:
    if not key:
        return False
    qs = ModelVersion.objects.filter(
        Q(artifact_key=key) | Q(safe_artifact_key=key) | Q(onnx_artifact_key=key) | Q(holdout_key=key)
        | Q(training_data_key=key)
    )
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exclude(status=VersionStatus.REJECTED).exists():
        return True
    return _key_used_elsewhere(key)


def _key_used_elsewhere(key: str) -> bool:
    """Other apps may store the same content (identical bytes share one key): never delete theirs."""
    try:
        from apps.features.models import TrainingSet

        if TrainingSet.objects.filter(Q(artifact_key=key) | Q(label_artifact_key=key)).exists():
            return True
    except Exception:  # noqa: BLE001 - the feature store may not be installed
        pass
    return False


def _delete_unreferenced(keys, *, exclude_pk=None) -> list[str]:
    store, deleted = artifact_store(), []
    for key in {k for k in keys if k}:
        if not _key_in_use(key, exclude_pk=exclude_pk):
            store.delete(key)
            deleted.append(key)
    return deleted


def model_version_upload(*, model: RegisteredModel, actor, artifact: BinaryIO, filename: str = "",
                         holdout: BinaryIO | None = None, holdout_filename: str = "", holdout_target: str = "",
                         training_data: BinaryIO | None = None, training_data_filename: str = "",
                         training_set=None, uploader_metrics=None, tags=None, model_card: str = "",
                         code_ref: str = "", parent_version: int | None = None, null_values=None,
                         idempotency_key: str | None = None) -> ModelVersion:
    """Store the artifact (content-addressed), create version N+1 in ``validating`` and enqueue its
    validation job. A refused upload leaves no file behind.

    ``null_values``: extra null tokens of the holdout and training data files (a list, a JSON list or
    ``NA, null`` text; only the empty cell is null by default), parsed as for every tabular upload
    (``features.services.tabular_null_values``) and kept in the validation job's params."""
    from apps.features.services import tabular_null_values

    project = model.project
    _require(actor, project, "model.upload")
    if model.is_archived:
        raise Conflict(f"{model.name} is archived")
    if idempotency_key:
        existing = ModelVersion.objects.filter(model=model, job__idempotency_key=f"registry:{idempotency_key}").first()
        if existing is not None:
            return existing
    filename = clean_filename(filename or getattr(artifact, "name", ""), field="artifact")
    holdout_filename = clean_filename(holdout_filename or getattr(holdout, "name", ""), field="holdout") if holdout else ""
    training_data_filename = (clean_filename(training_data_filename or getattr(training_data, "name", ""),
                                             field="training_data") if training_data else "")
    metrics = _clean_metrics(uploader_metrics)
    nulls = tabular_null_values(null_values)
    tags = _clean_tags(tags)
    if len(model_card or "") > 100_000:
        raise InvalidInput("The model card must be at most 100,000 characters", field="model_card")
    if len(code_ref or "") > 300:
        raise InvalidInput("The code reference must be at most 300 characters", field="code_ref")
    holdout_target = (holdout_target or "target").strip()[:120]
    parent = None
    if parent_version:
        parent = model.versions.filter(version=parent_version).first()
        if parent is None:
            raise InvalidInput(f"{model.name} has no version {parent_version}", field="parent_version")
    if training_set is not None and (training_set.project_id != project.pk or not training_set.is_ready):
        raise InvalidInput("Choose a ready training set of this project", field="training_set")

    stored_keys: list[str] = []
    try:
        art, fmt = _store_upload(artifact, field="artifact", label="artifact", kind="model")
        stored_keys.append(art.key)
        hold = train = None
        if holdout is not None:
            hold, _ = _store_upload(holdout, field="holdout", label="holdout file", kind="table")
            stored_keys.append(hold.key)
        if training_data is not None:
            train, _ = _store_upload(training_data, field="training_data", label="training data file", kind="table")
            stored_keys.append(train.key)
        with transaction.atomic():
            locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
            number = (locked.versions.aggregate(n=Max("version"))["n"] or 0) + 1
            version = ModelVersion.objects.create(
                model=locked, version=number, status=VersionStatus.VALIDATING,
                artifact_key=art.key, artifact_sha256=art.sha256, artifact_size=art.size, artifact_format=fmt,
                original_filename=filename, uploader_metrics=metrics, tags=tags, model_card=model_card or "",
                holdout_key=hold.key if hold else "", holdout_filename=holdout_filename,
                holdout_target=holdout_target,
                training_data_key=train.key if train else "",
                training_data_name=training_data_filename or (training_set.name if training_set else ""),
                training_data_sha256=train.sha256 if train else (training_set.sha256 if training_set else ""),
                training_set=training_set, parent=parent, code_ref=(code_ref or "").strip(), created_by=actor,
            )
            job = job_create(
                kind="registry.validate", actor=actor, project=project,
                title=f"Validate {model.name} v{number}",
                params={"version_id": version.pk, **({"null_values": nulls} if nulls else {})},
                task="workers.registry.model_version_validate",
                idempotency_key=f"registry:{idempotency_key}" if idempotency_key else None,
                target_url=reverse("registry:version-detail",
                                   kwargs={"project": project.slug, "model": model.name, "version": number}),
            )
            version.job = job
            version.save(update_fields=["job"])
            audit_record(actor=actor, verb="model_version.upload", project=project, target=version,
                         details={"sha256": art.sha256, "size": art.size, "format": fmt, "filename": filename,
                                  "holdout": bool(hold), "training_data": bool(train),
                                  **({"null_values": nulls} if nulls else {})})
    except BaseException:
        _delete_unreferenced(stored_keys)
        raise
    return version


def model_version_validate(*, job: Job) -> dict:
    """The worker body: validate the version, then mark it ready or rejected (deleting its files)."""
    from . import validation

    version = ModelVersion.objects.select_related("model__project").filter(pk=job.params.get("version_id")).first()
    if version is None:
        raise NotFound("The version to validate no longer exists")
    if version.status != VersionStatus.VALIDATING:
        return {"version_id": version.pk, "status": version.status}
    if not _claim_validation(version):
        return _wait_for_other_validation(version)

    def progress(pct: int, message: str) -> None:
        job_progress(job=job, progress=pct, message=message)

    try:
        report = validation.validate(version, progress)
    except validation.Rejected as exc:
        model_version_reject(version=version, reason=exc.message, step=exc.step)
        raise InvalidInput(f"Rejected: {exc.message}") from exc
    except Exception as exc:
        if exc.__class__.__name__ == "JobCancelled":
            model_version_reject(version=version, reason="Validation was cancelled", step="cancel")
            raise
        log.exception("registry validation crashed", extra={"version_id": version.pk})
        model_version_reject(version=version, reason=f"Validation failed unexpectedly: {type(exc).__name__}: {exc}",
                             step="error")
        raise InvalidInput(f"Rejected: validation failed unexpectedly ({type(exc).__name__})") from exc
    inferred = (report.get("contract") or {}).get("features") if (report.get("contract") or {}).get("inferred") else None
    with transaction.atomic():
        if inferred is not None:
            problem = _contract_store_inferred(version=version, contract=inferred)
            if problem:
                transaction.set_rollback(True)
        else:
            problem = ""
    if problem:
        model_version_reject(version=version, reason=problem, step="contract")
        raise InvalidInput(f"Rejected: {problem}")
    with transaction.atomic():
        version.status = VersionStatus.READY
        version.status_reason = ""
        version.validated_at = timezone.now()
        version.validation_report = {**report, "result": "ready"}
        version.save()
        audit_record(actor=None, verb="model_version.ready", project=version.model.project, target=version,
                     details={"serving_format": version.serving_format, "onnx_verified": version.onnx_verified,
                              "metrics": version.metrics})
    return {"version_id": version.pk, "status": version.status, "serving_format": version.serving_format}


def _contract_store_inferred(*, version: ModelVersion, contract: list[dict]) -> str:
    """Store the contract read from ``version`` on its registered model (which asked for inference). If
    another version set a contract meanwhile, this one must match it: returns the problem, else ""."""
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    if model.input_contract:
        problems = spec.differences(spec.normalize_contract(model.input_contract), contract,
                                    found_from=f"v{version.version}")
        return ("Input signature mismatch: " + "; ".join(problems)) if problems else ""
    model.input_contract = contract
    model.save(update_fields=["input_contract", "updated_at"])
    version.model.input_contract = contract
    audit_record(actor=None, verb="model.contract_infer", project=model.project, target=model,
                 details={"version": version.version, "features": len(contract)})
    return ""


def _claim_validation(version: ModelVersion) -> bool:
    """Claim the validation of ``version``; a claim older than the task time limit is stale (crashed)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    return bool(ModelVersion.objects.filter(pk=version.pk, status=VersionStatus.VALIDATING).filter(
        Q(validation_claimed_at__isnull=True) | Q(validation_claimed_at__lt=stale)).update(validation_claimed_at=now))


def _wait_for_other_validation(version: ModelVersion) -> dict:
    """A duplicate delivery of the same job: wait for the running validation instead of racing it."""
    deadline = time.monotonic() + settings.CELERY_TASK_TIME_LIMIT
    while time.monotonic() < deadline:
        version.refresh_from_db(fields=["status", "status_reason"])
        if version.status != VersionStatus.VALIDATING:
            break
        time.sleep(0.5)
    if version.status == VersionStatus.REJECTED:
        raise InvalidInput(f"Rejected: {version.status_reason}")
    return {"version_id": version.pk, "status": version.status}


def model_version_reject(*, version: ModelVersion, reason: str, step: str = "") -> ModelVersion:
    """Mark a version rejected and delete its files unless another version uses the same content."""
    keys = [version.artifact_key, version.safe_artifact_key, version.onnx_artifact_key, version.holdout_key,
            version.training_data_key]
    with transaction.atomic():
        fresh = ModelVersion.objects.select_for_update().get(pk=version.pk)
        fresh.status = VersionStatus.REJECTED
        fresh.status_reason = reason[:5000]
        fresh.validated_at = timezone.now()
        fresh.validation_report = {"result": "rejected", "step": step, "reason": reason[:5000],
                                   "steps": (version.validation_report or {}).get("steps", [])}
        fresh.safe_artifact_key = fresh.onnx_artifact_key = ""
        fresh.onnx_verified = False
        fresh.reference_profile = {}
        fresh.save()
        version.__dict__.update({k: getattr(fresh, k) for k in ("status", "status_reason", "validated_at",
                                                                 "validation_report", "safe_artifact_key",
                                                                 "onnx_artifact_key", "onnx_verified")})
        audit_record(actor=None, verb="model_version.reject", project=fresh.model.project, target=fresh,
                     details={"reason": reason[:500], "step": step})
    deleted = _delete_unreferenced(keys, exclude_pk=version.pk)
    if deleted:
        ModelVersion.objects.filter(pk=version.pk).update(
            validation_report={**fresh.validation_report, "deleted_files": len(deleted)})
    return version


@transaction.atomic
def model_version_archive(*, version: ModelVersion, actor, archived: bool = True) -> ModelVersion:
    project = version.model.project
    _require(actor, project, "model.archive")
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if archived:
        if version.status != VersionStatus.READY:
            raise Conflict(f"Only ready versions can be archived ({version} is {version.status})")
        _check_not_serving(version)
        version.status = VersionStatus.ARCHIVED
        version.archived_at = timezone.now()
    else:
        if version.status != VersionStatus.ARCHIVED:
            raise Conflict(f"{version} is not archived")
        version.status = VersionStatus.READY
        version.archived_at = None
    version.save(update_fields=["status", "archived_at"])
    audit_record(actor=actor, verb="model_version.archive" if archived else "model_version.unarchive",
                 project=project, target=version)
    return version


def _check_not_serving(version: ModelVersion) -> None:
    """A version a deployment serves cannot be archived (the deployments app owns that relation)."""
    for rel in version._meta.related_objects:
        model = rel.related_model
        if model._meta.app_label == "deployments" and rel.field.name in ("production_version", "version"):
            filt = {rel.field.name: version}
            if hasattr(model, "archived_at"):
                filt["archived_at__isnull"] = True
            if model.objects.filter(**filt).exists():
                raise Conflict(f"{version} is served by a deployment: promote another version first")


@transaction.atomic
def model_version_update(*, version: ModelVersion, actor, tags=None, model_card: str | None = None) -> ModelVersion:
    """Tags and the model card stay editable; the artifact and lineage never change."""
    project = version.model.project
    _require(actor, project, "model.upload")
    changes = {}
    if tags is not None:
        tags = _clean_tags(tags)
        if tags != version.tags:
            changes["tags"] = [version.tags, tags]
            version.tags = tags
    if model_card is not None and model_card != version.model_card:
        if len(model_card) > 100_000:
            raise InvalidInput("The model card must be at most 100,000 characters", field="model_card")
        version.model_card = model_card
        changes["model_card"] = True
    if changes:
        version.save(update_fields=["tags", "model_card"])
        audit_record(actor=actor, verb="model_version.update", project=project, target=version, details=changes)
    return version


def model_version_download_check(*, version: ModelVersion, actor) -> None:
    """Downloads are audited too (who took a copy of which artifact)."""
    if not can(actor, version.model.project, "model.download"):
        raise PermissionDenied("Your role does not allow downloading model artifacts")
    if version.status == VersionStatus.REJECTED or not artifact_store().exists(version.artifact_key):
        raise NotFound("This version has no stored artifact")
    audit_record(actor=actor, verb="model_version.download", project=version.model.project, target=version,
                 details={"sha256": version.artifact_sha256})

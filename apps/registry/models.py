"""Registered models and their versions.

A ``RegisteredModel`` is a named model of a project with a task and an input contract (feature names
and types, in order). A ``ModelVersion`` is one immutable, content-addressed artifact of it, validated
by a worker: ``validating`` → ``ready`` or ``rejected`` (with ``status_reason``); ``archived`` later.

The artifact the user uploaded is kept under ``artifact_key`` (server-generated, sha256-addressed);
the registry also stores a safe form: ``safe_artifact_key`` (skops, loaded only with the server's
fixed allowlist; for XGBoost/LightGBM uploads the model as re-saved by the library in the sandbox) and, when skl2onnx converts it and its predictions matched scikit-learn's on held-out
data, ``onnx_artifact_key`` with ``onnx_verified``. Serving loads only those (apps.registry.loading).
"""

from django.conf import settings as django_settings
from django.db import models


class ModelTask(models.TextChoices):
    BINARY = "binary_classification", "Binary classification"
    MULTICLASS = "multiclass_classification", "Multiclass classification"
    REGRESSION = "regression", "Regression"


class VersionStatus(models.TextChoices):
    VALIDATING = "validating", "Validating"
    READY = "ready", "Ready"
    REJECTED = "rejected", "Rejected"
    ARCHIVED = "archived", "Archived"


class ArtifactFormat(models.TextChoices):
    SKOPS = "skops", "skops"
    ONNX = "onnx", "ONNX"
    JOBLIB = "joblib", "joblib"
    PICKLE = "pickle", "pickle"
    XGBOOST = "xgboost", "XGBoost (JSON/UBJSON)"
    LIGHTGBM = "lightgbm", "LightGBM (text)"


# Native gradient-boosting formats: data files read by the library's own parser, never unpickled.
NATIVE_FORMATS = ("xgboost", "lightgbm")


class ServingFormat(models.TextChoices):
    ONNX = "onnx", "ONNX"
    SKOPS = "skops", "skops"
    XGBOOST = "xgboost", "XGBoost (native)"
    LIGHTGBM = "lightgbm", "LightGBM (native)"


class RegisteredModel(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="registered_models")
    name = models.SlugField(max_length=80)
    task = models.CharField(max_length=32, choices=ModelTask.choices)
    description = models.TextField(blank=True, max_length=5000)
    # [{"name": "amount", "type": "float"}, ...] in the order the model takes its columns.
    input_contract = models.JSONField(default=list, blank=True)
    # The feature-store feature set the contract comes from (its output names, in order), if any.
    feature_set = models.ForeignKey("features.FeatureSet", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="registered_models")
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="registered_model_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def feature_names(self) -> list[str]:
        return [c["name"] for c in self.input_contract or []]

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class ModelVersion(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=VersionStatus.choices, default=VersionStatus.VALIDATING,
                              db_index=True)
    status_reason = models.TextField(blank=True)

    # The uploaded artifact (immutable, content-addressed; the user's file name is a label only).
    artifact_key = models.CharField(max_length=200)
    artifact_sha256 = models.CharField(max_length=64, db_index=True)
    artifact_size = models.BigIntegerField(default=0)
    artifact_format = models.CharField(max_length=8, choices=ArtifactFormat.choices)
    original_filename = models.CharField(max_length=255, blank=True)
    # The safe forms the registry stores after validation; serving loads only these.
    safe_artifact_key = models.CharField(max_length=200, blank=True)
    onnx_artifact_key = models.CharField(max_length=200, blank=True)
    onnx_verified = models.BooleanField(default=False)
    serving_format = models.CharField(max_length=8, choices=ServingFormat.choices, blank=True)

    # What the worker learned about the model.
    classes = models.JSONField(null=True, blank=True)
    framework = models.CharField(max_length=60, blank=True)
    library_versions = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)  # computed by the portal on the holdout
    uploader_metrics = models.JSONField(default=dict, blank=True)  # as given by the uploader
    tags = models.JSONField(default=list, blank=True)
    model_card = models.TextField(blank=True, max_length=100_000)
    validation_report = models.JSONField(default=dict, blank=True)
    reference_profile = models.JSONField(default=dict, blank=True)  # see apps.registry.profile
    holdout_key = models.CharField(max_length=200, blank=True)
    holdout_filename = models.CharField(max_length=255, blank=True)
    holdout_target = models.CharField(max_length=120, blank=True, default="target")
    training_data_key = models.CharField(max_length=200, blank=True)

    # Lineage.
    training_data_name = models.CharField(max_length=255, blank=True)
    training_data_sha256 = models.CharField(max_length=64, blank=True)
    training_set = models.ForeignKey("features.TrainingSet", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="model_versions")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    code_ref = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    validated_at = models.DateTimeField(null=True, blank=True)
    # Set by the worker that runs the validation, so a duplicate delivery waits instead of racing it.
    validation_claimed_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    job = models.ForeignKey("projects.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["model", "-version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="model_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"

    @property
    def project(self):
        return self.model.project

    @property
    def is_ready(self) -> bool:
        return self.status == VersionStatus.READY

    @property
    def feature_names(self) -> list[str]:
        return self.model.feature_names

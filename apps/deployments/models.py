"""Deployments, their API keys, their version timeline, and the prediction log.

Read this before using the tables from another app (monitoring reads the prediction log):

- ``Deployment``: one served model of a project. ``slug`` is unique portal-wide (the flat URL
  ``/api/v1/deployments/<slug>/predict``). ``production_version`` is the version answering now; a
  deployment without an ``owner`` cannot go live. ``status`` live/paused. ``input_mode`` "inline"
  (features in the request) or "entity" (entity keys, features from the online store).
- ``DeploymentEvent``: append-only timeline of which version served when and why (deploy, pause,
  resume, version change / promotion / rollback). The version serving at time *t* is the ``version`` of
  the latest event with ``created_at <= t`` whose kind changes the version (see
  ``selectors.deployment_version_at``). Shadow/promotion code appends events with its own ``kind``.
- ``DeploymentApiKey``: keys services use to call a deployment; only a SHA-256 of the secret is stored.
- ``PredictionLog``: one row per predicted instance (row), written in bulk by the spool drainer
  (``logpipe.py``), never by the request itself. Columns:
    ``request_id`` (UUID, unique: the per-row id returned to the caller; outcomes join on it),
    ``batch_id`` (UUID of the HTTP request), ``deployment_id``, ``version_id`` (registry.ModelVersion),
    ``created_at`` (UTC time the prediction was answered), ``entity_key`` (entity mode, else null),
    ``inputs`` (JSON object feature → value: the vector actually used, incl. online-store values),
    ``output`` (the prediction: class label or number), ``probabilities`` (JSON object class → p, or
    null for regressors), ``latency_ms`` (server time of the whole request).
  Indexed by (deployment, created_at), (version, created_at) and created_at for windowed reads; rows
  older than ``SERVING_LOG_RETENTION_DAYS`` are deleted by ``prediction_log_prune``.
- ``PredictionMinuteStat``: per deployment, version and UTC minute: requests, rows, errors and a fixed
  latency histogram (``stats.LATENCY_BUCKETS_MS``). Charts read these, never the raw log.
- ``ServingGeneration``: a single counter bumped by every change that serving processes must see
  (status, production version, keys). Each process checks it at most once per ``SERVING_STATE_TTL``.
"""

from django.conf import settings as django_settings
from django.db import models


class DeploymentStatus(models.TextChoices):
    LIVE = "live", "Live"
    PAUSED = "paused", "Paused"


class InputMode(models.TextChoices):
    INLINE = "inline", "Features in the request"
    ENTITY = "entity", "Entity keys (online store)"


class Deployment(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="deployments")
    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    registered_model = models.ForeignKey("registry.RegisteredModel", on_delete=models.PROTECT,
                                         related_name="deployments")
    production_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT,
                                           related_name="production_deployments")
    owner = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="owned_deployments")
    status = models.CharField(max_length=10, choices=DeploymentStatus.choices, default=DeploymentStatus.PAUSED)
    input_mode = models.CharField(max_length=10, choices=InputMode.choices, default=InputMode.INLINE)
    max_batch = models.PositiveIntegerField(default=1000)
    status_message = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_live(self) -> bool:
        return self.status == DeploymentStatus.LIVE


class DeploymentEvent(models.Model):
    """Append-only timeline: which version served when, and why."""

    class Kind(models.TextChoices):
        DEPLOY = "deploy", "Deployed"
        VERSION = "version", "Production version changed"
        PROMOTE = "promote", "Promoted"
        ROLLBACK = "rollback", "Rolled back"
        PAUSE = "pause", "Paused"
        RESUME = "resume", "Resumed"
        OWNER = "owner", "Owner changed"

    VERSION_KINDS = ("deploy", "version", "promote", "rollback")

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20)
    version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+")
    previous_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
                                         related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["deployment", "created_at"], name="deploy_event_time")]

    def __str__(self) -> str:
        return f"{self.deployment_id}: {self.kind}"


class DeploymentApiKey(models.Model):
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ServingGeneration(models.Model):
    """One row (id=1). Bumped in the same transaction as every serving-relevant change."""

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"generation {self.value}"


class PredictionLog(models.Model):
    request_id = models.UUIDField(unique=True)
    # Every index costs each logged prediction a write: the two composite indexes serve every query
    # (their leading columns cover the foreign keys); the batch id is not searched.
    batch_id = models.UUIDField()
    deployment = models.ForeignKey(Deployment, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                                   related_name="+")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.DO_NOTHING, db_constraint=False,
                                db_index=False, related_name="+")
    created_at = models.DateTimeField()
    entity_key = models.CharField(max_length=200, null=True, blank=True)
    inputs = models.JSONField()
    output = models.JSONField()
    probabilities = models.JSONField(null=True, blank=True)
    latency_ms = models.FloatField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["deployment", "created_at"], name="predlog_deployment_time"),
            models.Index(fields=["version", "created_at"], name="predlog_version_time"),
        ]

    def __str__(self) -> str:
        return str(self.request_id)


class PredictionMinuteStat(models.Model):
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="minute_stats")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.DO_NOTHING,
                                db_constraint=False, related_name="+")
    minute = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0)
    latency_hist = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "version", "minute"], name="predstat_unique")]
        indexes = [models.Index(fields=["deployment", "minute"], name="predstat_deployment_minute")]

    def __str__(self) -> str:
        return f"{self.deployment_id}@{self.minute:%Y-%m-%d %H:%M}"


class CanarySticky(models.TextChoices):
    REQUEST = "request", "Request id hash"
    ENTITY = "entity", "Entity key hash (entity-mode deployments)"


class Canary(models.Model):
    """A share of a deployment's live requests answered (and logged) by a candidate version.

    Read by the serving cache when it reloads a deployment (every change bumps the serving generation);
    the split is a hash of the request id or of each entity key, so a caller sees a stable side. A paused
    canary (``paused_at``) is not served.
    """

    deployment = models.OneToOneField("deployments.Deployment", on_delete=models.CASCADE, related_name="canary")
    candidate = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    percent = models.FloatField()
    sticky_by = models.CharField(max_length=10, choices=CanarySticky.choices, default=CanarySticky.REQUEST)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    # Paused (by an emergency rollback): kept with its settings, answers nothing until resumed.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"canary {self.percent}% of {self.deployment_id} → {self.candidate_id}"

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

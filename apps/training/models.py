"""Training jobs: refit a registered version's estimator on a fresh point-in-time training set.

A ``TrainingJob`` names the registered model, the parent version whose estimator is cloned (same
pipeline and hyperparameters, fresh fit), the feature set, the label source (an uploaded label file,
or outcomes collected by monitoring — prepared by the monitoring app and handed down as a label
frame), the time window of label rows, and the holdout split (a time, or the newest fraction of
rows). State and progress live on its ``projects.Job``; the result is a new ``ModelVersion``
registered through the registry's own upload + validation services in the job's final atomic step.

Retraining policies: metric-triggered retraining that still ends with a person's decision.

- ``RetrainingPolicy``: one per deployment. ``triggers`` is a list of
  ``{"kind": "alert_rule", "rule_id": 3}`` (fires while that rule has an open alert — any alert rule
  can be a trigger) or ``{"kind": "metric", "metric": "realized_accuracy", "comparator": "lt",
  "threshold": 0.8, "windows": 3}`` (the metric breached in the last N monitoring windows). Guards:
  cooldown after the last firing, at most ``max_firings`` per ``max_firings_period_hours``, at least
  ``min_new_labels`` outcomes received since the last firing (or since the production version
  started serving). ``training_window_days``: how far back the outcome labels for the job reach.
- ``PolicyFiring``: one row per episode (an open alert, a streak of breaching windows, or a manual
  "retrain now"), unique by ``(policy, episode_key)`` so a policy fires at most once per episode.
  It records why it fired (or why not: ``skipped`` with the reason, re-checked while the episode
  lasts) and what the chain produced: training job → validated version → shadow run → promotion
  request (left open for a reviewer; a policy never promotes).
"""

from django.conf import settings as django_settings
from django.db import models


class LabelSource(models.TextChoices):
    FILE = "file", "Uploaded label file"
    OUTCOMES = "outcomes", "Monitoring outcomes"


class TrainingTrigger(models.TextChoices):
    MANUAL = "manual", "Started by a person"
    POLICY = "policy", "Retraining policy"


class TrainingJob(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="training_jobs")
    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="training_jobs")
    parent_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="training_jobs")
    feature_set = models.ForeignKey("features.FeatureSet", on_delete=models.PROTECT, related_name="+")
    # Labels (stored as Parquet in the artifact store before the job is queued).
    label_source = models.CharField(max_length=10, choices=LabelSource.choices)
    label_source_detail = models.CharField(max_length=300, blank=True)  # file name, or "outcomes of <deployment>"
    label_artifact_key = models.CharField(max_length=200)
    label_sha256 = models.CharField(max_length=64)
    label_rows = models.PositiveIntegerField(default=0)
    timestamp_column = models.CharField(max_length=120, default="event_timestamp")
    label_column = models.CharField(max_length=120)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    holdout_split_at = models.DateTimeField(null=True, blank=True)
    holdout_fraction = models.FloatField(null=True, blank=True, default=0.2)
    # Tracking and result.
    job = models.ForeignKey("projects.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    training_set = models.ForeignKey("features.TrainingSet", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    result_version = models.OneToOneField("registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="training_job")
    # {"candidate": {...}, "parent": {...}, "n_train", "n_holdout", "split_time", "dropped_rows", ...}
    metrics = models.JSONField(default=dict, blank=True)
    logs = models.TextField(blank=True)
    trigger = models.CharField(max_length=10, choices=TrainingTrigger.choices, default=TrainingTrigger.MANUAL)
    note = models.CharField(max_length=300, blank=True)
    idempotency_key = models.CharField(max_length=120, null=True, blank=True, unique=True)
    requested_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "registry_trainingjob"  # the table kept its name when the model moved apps
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"], name="trainingjob_project_time")]

    def __str__(self) -> str:
        return f"training job #{self.pk} of {self.model_id}"

    @property
    def status(self) -> str:
        return self.job.status if self.job_id else "queued"


class RetrainingPolicy(models.Model):
    deployment = models.OneToOneField("deployments.Deployment", on_delete=models.CASCADE,
                                      related_name="retraining_policy")
    enabled = models.BooleanField(default=True)
    triggers = models.JSONField(default=list, blank=True)
    cooldown_minutes = models.PositiveIntegerField(default=24 * 60)
    max_firings = models.PositiveIntegerField(default=2)
    max_firings_period_hours = models.PositiveIntegerField(default=7 * 24)
    min_new_labels = models.PositiveIntegerField(default=500)
    training_window_days = models.PositiveIntegerField(default=30)
    holdout_fraction = models.FloatField(default=0.2)
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


    class Meta:
        db_table = "monitoring_retrainingpolicy"  # the table kept its name when the model moved apps
    def __str__(self) -> str:
        return f"retraining policy of {self.deployment}"


class FiringStatus(models.TextChoices):
    SKIPPED = "skipped", "Did not fire"
    TRAINING = "training", "Training"
    VALIDATING = "validating", "Validating new version"
    SHADOW = "shadow", "Shadow running"
    AWAITING_REVIEW = "awaiting_review", "Promotion request awaiting review"
    PROMOTED = "promoted", "Approved and promoted"
    REJECTED = "rejected", "Rejected in review"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


class PolicyFiring(models.Model):
    IN_FLIGHT = (FiringStatus.TRAINING, FiringStatus.VALIDATING, FiringStatus.SHADOW)

    policy = models.ForeignKey(RetrainingPolicy, on_delete=models.CASCADE, related_name="firings")
    trigger = models.CharField(max_length=12)  # alert_rule / metric / manual
    episode_key = models.CharField(max_length=120)
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=FiringStatus.choices)
    outcome = models.TextField(blank=True)  # why not, or what happened last
    alert = models.ForeignKey("monitoring.Alert", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    new_labels = models.PositiveIntegerField(default=0)
    label_rows = models.PositiveIntegerField(default=0)
    max_outcome_id = models.BigIntegerField(default=0)  # outcomes up to this id were "seen" by this firing
    training_job = models.ForeignKey("training.TrainingJob", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    # The deployments app's shadow run and promotion request (ids; their models live there).
    shadow_run_id = models.BigIntegerField(null=True, blank=True)
    promotion_request_id = models.BigIntegerField(null=True, blank=True)
    steps = models.JSONField(default=list, blank=True)  # [{"at", "step", "message"}]
    checks = models.PositiveIntegerField(default=1)  # how often a skipped episode was re-checked
    actor = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "monitoring_policyfiring"  # the table kept its name when the model moved apps
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["policy", "episode_key"], name="policy_firing_once_per_episode")]

    def __str__(self) -> str:
        return f"{self.policy_id}:{self.episode_key} ({self.status})"

    @property
    def fired(self) -> bool:
        return self.fired_at is not None

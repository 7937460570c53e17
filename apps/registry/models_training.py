"""Training jobs: refit a registered version's estimator on a fresh point-in-time training set.

A ``TrainingJob`` names the registered model, the parent version whose estimator is cloned (same
pipeline and hyperparameters, fresh fit), the feature set, the label source (an uploaded label file,
or outcomes collected by monitoring — prepared by the monitoring app and handed down as a label
frame), the time window of label rows, and the holdout split (a time, or the newest fraction of
rows). State and progress live on its ``projects.Job``; the result is a new ``ModelVersion``
registered through the registry's own upload + validation services in the job's final atomic step.
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
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"], name="trainingjob_project_time")]

    def __str__(self) -> str:
        return f"training job #{self.pk} of {self.model_id}"

    @property
    def status(self) -> str:
        return self.job.status if self.job_id else "queued"

"""Retraining policies: metric-triggered retraining that still ends with a person's decision.

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

    def __str__(self) -> str:
        return f"retraining policy of {self.deployment}"


class FiringStatus(models.TextChoices):
    SKIPPED = "skipped", "Did not fire"
    TRAINING = "training", "Training"
    VALIDATING = "validating", "Validating new version"
    SHADOW = "shadow", "Shadow running"
    AWAITING_REVIEW = "awaiting_review", "Promotion request awaiting review"
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
    training_job = models.ForeignKey("registry.TrainingJob", null=True, blank=True, on_delete=models.SET_NULL,
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
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["policy", "episode_key"], name="policy_firing_once_per_episode")]

    def __str__(self) -> str:
        return f"{self.policy_id}:{self.episode_key} ({self.status})"

    @property
    def fired(self) -> bool:
        return self.fired_at is not None

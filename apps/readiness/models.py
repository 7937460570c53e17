"""Readiness data: what people answer, and dated snapshots of the live assessment.

- ``ReadinessAnswer``: one current answer (and/or note) per project and item key — for the items the
  portal cannot see (an on-call rota, most of the ML Test Score) and notes on any item. Each change is
  written to the audit log, which keeps the history of answers.
- ``ReadinessSnapshot``: the assessment frozen at a moment (stage, score, ML Test Score, every item's
  status and figure). Managers save them by hand; a daily beat task saves one per project. The
  portfolio's trend chart reads these.
"""

from django.conf import settings as django_settings
from django.db import models


class ReadinessAnswer(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="readiness_answers")
    item_key = models.CharField(max_length=60)
    answer = models.CharField(max_length=12, blank=True)  # see scoring.ANSWER_LABELS; blank = note only
    note = models.TextField(blank=True, max_length=2000)
    answered_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                    related_name="+")
    answered_at = models.DateTimeField()

    class Meta:
        ordering = ["item_key"]
        constraints = [models.UniqueConstraint(fields=["project", "item_key"], name="readiness_answer_unique")]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.item_key}={self.answer}"


class ReadinessSnapshot(models.Model):
    class Kind(models.TextChoices):
        MANUAL = "manual", "Saved by a person"
        SCHEDULED = "scheduled", "Daily"

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="readiness_snapshots")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MANUAL)
    taken_at = models.DateTimeField(db_index=True)
    taken_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    stage = models.CharField(max_length=12)
    score = models.PositiveSmallIntegerField()
    ml_test_score = models.FloatField(default=0)
    lead_time_s = models.FloatField(null=True, blank=True)  # median upload → production
    open_alerts = models.PositiveIntegerField(default=0)
    items = models.JSONField(default=dict)  # key -> {"status", "figure", "value", "source"}
    note = models.TextField(blank=True, max_length=2000)
    # "<project id>:<Idempotency-Key>" of the API call that saved it: a retried call returns this snapshot.
    idempotency_key = models.CharField(max_length=160, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-taken_at", "-id"]
        indexes = [models.Index(fields=["project", "-taken_at"], name="readiness_snapshot_time")]

    def __str__(self) -> str:
        return f"{self.project_id} {self.taken_at:%Y-%m-%d} {self.stage} {self.score}"

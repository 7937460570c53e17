"""Shadow runs and promotion requests (imported by ``models.py``; same app label ``deployments``).

- ``ShadowRun``: a READY candidate version of the deployment's registered model scoring the deployment's
  logged production traffic in batches (a Celery job; never on the request path). ``last_log_id`` is
  the cursor into ``PredictionLog`` (ids grow with insertion); ``comparison`` is the latest
  ``shadow_stats.Comparison.to_dict()``.
- ``ShadowPrediction``: the candidate's answer for one logged request, next to a copy of what
  production answered (so the comparison reads one table, and survives log pruning).
- ``PromotionRequest``: a request to make ``candidate`` the production version of ``deployment``. The
  evidence is frozen into ``evidence`` (JSON) with its ``evidence_hash`` (sha256 of the canonical JSON)
  and the candidate's ``artifact_sha256``; refreshing the evidence changes the hash.
- ``PromotionReview``: one reviewer's decision with the evidence hash and artifact sha256 they saw.
  An approval counts only while both still equal the request's (see ``promotion.py``).
"""

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q


class ShadowStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"  # by an emergency rollback; resumable (the cursor is kept)
    STOPPED = "stopped", "Stopped"


class ShadowRun(models.Model):
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="shadow_runs")
    candidate = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="shadow_runs")
    status = models.CharField(max_length=10, choices=ShadowStatus.choices, default=ShadowStatus.ACTIVE)
    since = models.DateTimeField()  # log rows answered at or after this time are scored
    last_log_id = models.BigIntegerField(default=0)
    scored = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)  # rows the candidate could not score
    last_error = models.CharField(max_length=500, blank=True)
    comparison = models.JSONField(default=dict, blank=True)
    compared_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    started_at = models.DateTimeField(auto_now_add=True)
    stopped_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    stopped_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "deployments_shadowrun"  # the table kept its name when the model moved apps
        ordering = ["-started_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["deployment", "candidate"], condition=Q(status="active"),
                                               name="shadow_one_active_per_candidate")]

    def __str__(self) -> str:
        return f"shadow #{self.pk} of {self.candidate_id} on {self.deployment_id}"

    @property
    def is_active(self) -> bool:
        return self.status == ShadowStatus.ACTIVE

    @property
    def is_paused(self) -> bool:
        return self.status == ShadowStatus.PAUSED


class ShadowPrediction(models.Model):
    run = models.ForeignKey(ShadowRun, on_delete=models.CASCADE, related_name="predictions")
    request_id = models.UUIDField()
    log_id = models.BigIntegerField()
    created_at = models.DateTimeField()  # when production answered
    production_version_id = models.BigIntegerField()
    production_output = models.JSONField()
    production_score = models.FloatField(null=True)  # binary: positive-class probability
    candidate_output = models.JSONField()
    candidate_score = models.FloatField(null=True)

    class Meta:
        db_table = "deployments_shadowprediction"  # the table kept its name when the model moved apps
        constraints = [models.UniqueConstraint(fields=["run", "request_id"], name="shadow_prediction_unique")]
        indexes = [models.Index(fields=["run", "log_id"], name="shadow_pred_run_log")]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.request_id}"


class PromotionStatus(models.TextChoices):
    OPEN = "open", "Open"
    PROMOTED = "promoted", "Approved and promoted"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class PromotionRequest(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="promotion_requests")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE,
                                   related_name="promotion_requests")
    candidate = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    production_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    shadow_run = models.ForeignKey(ShadowRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=PromotionStatus.choices, default=PromotionStatus.OPEN)
    justification = models.TextField(max_length=5000)
    artifact_sha256 = models.CharField(max_length=64)
    evidence = models.JSONField(default=dict)
    evidence_hash = models.CharField(max_length=64)
    evidence_at = models.DateTimeField()
    gates_passed = models.BooleanField(default=False)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    requested_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    decision_comment = models.TextField(blank=True, max_length=5000)

    class Meta:
        db_table = "deployments_promotionrequest"  # the table kept its name when the model moved apps
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["deployment", "candidate"], condition=Q(status="open"),
                                               name="promotion_one_open_per_candidate")]
        indexes = [models.Index(fields=["project", "status"], name="promotion_project_status")]

    def __str__(self) -> str:
        return f"promotion #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status == PromotionStatus.OPEN


class ReviewDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class PromotionReview(models.Model):
    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=ReviewDecision.choices)
    comment = models.TextField(max_length=5000)
    override_reason = models.TextField(blank=True, max_length=5000)  # required when a gate failed
    failing_gates = models.JSONField(default=list, blank=True)  # the gates overridden
    evidence_hash = models.CharField(max_length=64)  # what the reviewer read
    artifact_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "deployments_promotionreview"  # the table kept its name when the model moved apps
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.decision} by {self.reviewer_id} on {self.request_id}"

"""Run inside ``manage.py shell`` after ``seed_demo`` (tests/common/test_schemathesis.py): create an owner's
and a non-member's API token and print, as one JSON line, the ids of real objects of the demo's ``churn``
project, so a non-member can be pointed at things that exist."""

import json

from django.contrib.auth import get_user_model

from apps.deployments.models import Deployment, DeploymentApiKey
from apps.features.models import DataSource, FeatureSet, FeatureView, TrainingSet
from apps.monitoring.models import Alert
from apps.projects.models import Job
from apps.projects.services import api_token_create
from apps.readiness.models import ReadinessAnswer
from apps.registry.models import ModelVersion
from apps.releases.models import PromotionRequest, ShadowRun
from apps.training.models import PolicyFiring, TrainingJob

User = get_user_model()
owner = User.objects.get(username="olivia")
outsider, _ = User.objects.get_or_create(username="mallory", defaults={"email": "mallory@example.com"})
P = "churn"
dep = Deployment.objects.filter(project__slug=P).first()
version = ModelVersion.objects.filter(model__project__slug=P).order_by("version").first()


def first(qs, field="pk"):
    value = qs.values_list(field, flat=True).first()
    return str(value) if value is not None else None


ids = {
    "project": P, "deployment": dep.slug, "model": version.model.name, "version": str(version.version),
    "job_id": first(Job.objects.filter(project__slug=P)), "alert_id": first(Alert.objects.filter(deployment=dep)),
    "run_id": first(ShadowRun.objects.filter(deployment=dep)), "key_id": first(DeploymentApiKey.objects.filter(
        deployment=dep)), "username": "olivia",
    "item_key": first(ReadinessAnswer.objects.filter(project__slug=P), "item_key") or "owner",
    ("name", "feature-views"): first(FeatureView.objects.filter(project__slug=P), "name"),
    ("name", "feature-sets"): first(FeatureSet.objects.filter(project__slug=P), "name"),
    ("name", "training-sets"): first(TrainingSet.objects.filter(project__slug=P), "name"),
    ("name", "sources"): first(DataSource.objects.filter(project__slug=P), "name"),
    ("pk", "promotions"): first(PromotionRequest.objects.filter(project__slug=P)),
    ("pk", "training-jobs"): first(TrainingJob.objects.filter(project__slug=P)),
    ("pk", "firings"): first(PolicyFiring.objects.filter(policy__deployment=dep)),
}
print("FUZZ-SETUP " + json.dumps({
    "owner": api_token_create(user=owner, name="fuzz")[1],
    "outsider": api_token_create(user=outsider, name="fuzz")[1],
    "ids": [[list(k) if isinstance(k, tuple) else k, v] for k, v in ids.items()],
}))

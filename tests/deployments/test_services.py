"""Deployment rules: owners, ready versions, portal-wide slugs, entity mode vs batch-only features,
audited pause/resume/version changes, permissions; plus entity-key predictions and /metrics."""

import json

import pytest

from apps.common.errors import Conflict, InvalidInput, PermissionDenied
from apps.deployments import logpipe, services
from apps.deployments.models import DeploymentEvent, PredictionLog
from apps.projects.models import AuditEvent

from .factories import deploy, make_ready_version, row


@pytest.mark.django_db
def test_deployment_without_owner_cannot_go_live_but_can_be_created_paused(project, users):
    v = make_ready_version(project=project, actor=users["owner"])
    with pytest.raises(InvalidInput, match="without an owner cannot go live"):
        services.deployment_create(project=project, actor=users["owner"], version=v, slug="a", owner=None)
    dep = services.deployment_create(project=project, actor=users["owner"], version=v, slug="a", owner=None,
                                     go_live=False)
    assert dep.status == "paused"
    with pytest.raises(InvalidInput, match="owner"):
        services.deployment_resume(deployment=dep, actor=users["owner"],
                                   override_reason="first version live without review (test fixture)")
    services.deployment_owner_set(deployment=dep, actor=users["owner"], owner=users["data_scientist"])
    assert services.deployment_resume(deployment=dep, actor=users["owner"],
                                      override_reason="first version live without review (test fixture)").status == "live"
    with pytest.raises(InvalidInput, match="must keep an owner"):
        services.deployment_owner_set(deployment=dep, actor=users["owner"], owner=None)


@pytest.mark.django_db
def test_only_ready_versions_and_unique_slugs_and_members_as_owners(project, users, make_user):
    v = make_ready_version(project=project, actor=users["owner"])
    v.status = "validating"
    v.save()
    with pytest.raises(InvalidInput, match="only a ready version"):
        services.deployment_create(project=project, actor=users["owner"], version=v, slug="a", owner=users["owner"])
    v.status = "ready"
    v.save()
    with pytest.raises(InvalidInput, match="not a member"):
        services.deployment_create(project=project, actor=users["owner"], version=v, slug="a", owner=users["outsider"])
    services.deployment_create(project=project, actor=users["owner"], version=v, slug="a", owner=users["owner"],
                               override_reason="first version live without review (test fixture)")
    from apps.projects.services import project_create

    other = project_create(actor=users["owner"], name="Other", slug="other")
    v2 = make_ready_version(project=other, actor=users["owner"])
    with pytest.raises(Conflict, match="unique across the portal"):
        services.deployment_create(project=other, actor=users["owner"], version=v2, slug="a", owner=users["owner"])


@pytest.mark.django_db
def test_roles_without_deployment_manage_cannot_deploy_or_pause(project, users):
    v = make_ready_version(project=project, actor=users["owner"])
    for role in ("analyst", "reviewer", "manager"):
        with pytest.raises(PermissionDenied):
            services.deployment_create(project=project, actor=users[role], version=v, slug="x", owner=users["owner"])
    dep, _ = deploy(project=project, actor=users["owner"], version=v)
    with pytest.raises(PermissionDenied):
        services.deployment_pause(deployment=dep, actor=users["analyst"])
    with pytest.raises(PermissionDenied):
        services.deployment_api_key_create(deployment=dep, actor=users["analyst"], name="k")


@pytest.mark.django_db
def test_deploy_pause_resume_and_version_change_are_audited_and_timelined(project, users):
    from apps.deployments.selectors import deployment_version_at

    owner = users["owner"]
    v1 = make_ready_version(project=project, actor=owner)
    v2 = make_ready_version(project=project, actor=owner, seed=2)
    dep, _ = deploy(project=project, actor=owner, version=v1)
    services.deployment_pause(deployment=dep, actor=owner, reason="incident")
    services.deployment_resume(deployment=dep, actor=owner)
    services.deployment_version_set(deployment=dep, actor=owner, version=v2, reason="better AUC")
    with pytest.raises(Conflict):
        services.deployment_version_set(deployment=dep, actor=owner, version=v2)
    verbs = set(AuditEvent.objects.filter(project=project).values_list("verb", flat=True))
    assert {"deployment.deploy", "deployment.pause", "deployment.resume", "deployment.version",
            "deployment.key_create"} <= verbs
    kinds = list(DeploymentEvent.objects.filter(deployment=dep).order_by("created_at", "id").values_list("kind", flat=True))
    assert kinds == ["deploy", "pause", "resume", "version"]
    last = DeploymentEvent.objects.filter(deployment=dep, kind="version").get()
    assert (last.version, last.previous_version, last.reason) == (v2, v1, "better AUC")
    assert deployment_version_at(deployment=dep, at=last.created_at) == v2


@pytest.mark.django_db
def test_entity_mode_is_refused_when_the_feature_set_has_a_batch_only_feature(project, users):
    from tests.features.factories import make_feature_store

    fs = make_feature_store(project=project, actor=users["owner"], online=False)
    contract = [{"name": "amount", "type": "float"}, {"name": "n_tx", "type": "int"}]
    v = make_ready_version(project=project, actor=users["owner"], n_features=2, contract=contract,
                           feature_set=fs.feature_set)
    with pytest.raises(InvalidInput, match="customer_stats:amount") as err:
        services.deployment_create(project=project, actor=users["owner"], version=v, slug="e", owner=users["owner"],
                                   input_mode="entity")
    assert "batch-only" in err.value.message


@pytest.mark.django_db
def test_entity_mode_predicts_from_the_online_store_and_logs_the_fetched_vector(client, project, users):
    from apps.features.services import feature_view_materialize
    from tests.features.factories import make_feature_store

    fs = make_feature_store(project=project, actor=users["owner"], online=True)
    feature_view_materialize(view=fs.view, as_of=fs.end)
    contract = [{"name": "amount", "type": "float"}, {"name": "n_tx", "type": "int"}]
    v = make_ready_version(project=project, actor=users["owner"], n_features=2, contract=contract,
                           feature_set=fs.feature_set)
    dep, key = deploy(project=project, actor=users["owner"], version=v, slug="by-key", input_mode="entity")
    resp = client.post("/api/v1/deployments/by-key/predict", json.dumps({"entities": ["c1", "c2"]}),
                       content_type="application/json", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.content
    missing = client.post("/api/v1/deployments/by-key/predict", json.dumps({"entities": ["nobody"]}),
                          content_type="application/json", headers={"Authorization": f"Bearer {key}"})
    assert missing.status_code == 422 and "no value of 'amount' for entity 'nobody'" in missing.json()["detail"]
    logpipe.drain()
    log = PredictionLog.objects.get(entity_key="c1")
    assert log.inputs == {"amount": 123.0, "n_tx": 23}  # c1's latest values available at materialization
    assert type(log.inputs["n_tx"]) is int  # logged with the declared type (a bool stays a bool)


@pytest.mark.django_db
def test_metrics_endpoint_exposes_requests_errors_latency_and_backlog(client, project, users):
    v = make_ready_version(project=project, actor=users["owner"])
    _, key = deploy(project=project, actor=users["owner"], version=v)
    headers = {"Authorization": f"Bearer {key}"}
    client.post("/api/v1/deployments/fraud-api/predict", json.dumps({"instances": [row()]}),
                content_type="application/json", headers=headers)
    client.post("/api/v1/deployments/fraud-api/predict", "{", content_type="application/json", headers=headers)
    text = client.get("/metrics").content.decode()
    assert f'slipway_predict_requests_total{{deployment="fraud-api",status="200",version="{v.pk}"}}' in text
    assert f'slipway_predict_errors_total{{deployment="fraud-api",reason="invalid_input",version="{v.pk}"}}' in text
    assert "slipway_predict_latency_seconds_bucket" in text
    assert "slipway_prediction_log_backlog_bytes" in text


def test_batched_success_metrics_equal_direct_observation(settings):
    """observe_ok keeps counts in memory; the flush adds them to the same values Histogram.observe would give."""
    import uuid

    from prometheus_client import CollectorRegistry, Histogram

    from apps.deployments import metrics

    settings.SERVING_OBSERVABILITY_FLUSH_S = 3600.0  # only the explicit flush below writes
    reference = CollectorRegistry()
    ref = Histogram("ref", "reference", buckets=metrics.LATENCY_BUCKETS, registry=reference)
    dep = f"batched-{uuid.uuid4().hex[:8]}"
    values = [0.0001, 0.0005, 0.0005000001, 0.0015, 0.002, 0.3, 2.5, 7.0, 0.01]
    for v in values:
        metrics.observe_ok(dep, "3", 2, v)
        ref.observe(v)
    labels = {"deployment": dep, "version": "3"}

    def value(metric, sample: str, want: dict):  # read the metric itself (the default registry also reads the DB)
        for family in metric.collect():
            for s in family.samples:
                if s.name == sample and s.labels == want:
                    return s.value
        return None

    assert value(metrics.ROWS, "slipway_predictions_total", labels) is None  # nothing written yet
    metrics.flush()
    assert value(metrics.REQUESTS, "slipway_predict_requests_total", {**labels, "status": "200"}) == len(values)
    assert value(metrics.ROWS, "slipway_predictions_total", labels) == 2 * len(values)
    assert value(metrics.LATENCY, "slipway_predict_latency_seconds_sum", labels) == pytest.approx(sum(values))
    for le in [*(str(b) for b in metrics.LATENCY_BUCKETS), "+Inf"]:
        ours = value(metrics.LATENCY, "slipway_predict_latency_seconds_bucket", {**labels, "le": le})
        assert ours == reference.get_sample_value("ref_bucket", {"le": le}), le
    metrics.observe_ok(dep, "3", 1, 0.001)  # a second flush adds to the first
    metrics.flush()
    assert value(metrics.REQUESTS, "slipway_predict_requests_total", {**labels, "status": "200"}) == len(values) + 1

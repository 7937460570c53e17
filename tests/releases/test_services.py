"""Shadow runs and promotion rules through the services (real registry validation, real predict path)."""

import threading

import pytest
from django.db import connection

from apps.common.errors import Conflict, InvalidInput, PermissionDenied
from apps.deployments.models import Deployment, DeploymentEvent
from apps.projects.models import AuditEvent
from apps.releases import selectors as release_selectors
from apps.releases.models import PromotionStatus, ShadowPrediction, ShadowStatus
from apps.releases.services import promotion, rollout, shadow

from .factories import deploy, post_outcomes, send_traffic, set_policy, versions


@pytest.fixture
def setup(project, users, client):
    weak, strong = versions(project, users["data_scientist"])
    dep, key = deploy(project, users["owner"], weak)
    return dep, key, weak, strong


def _shadow(dep, users, strong, client, key, api_client, n=300, outcomes=True):
    run = shadow.shadow_run_start(deployment=dep, actor=users["data_scientist"], candidate=strong)
    pairs = send_traffic(client, dep.slug, key, n=n)
    if outcomes:
        post_outcomes(api_client(users["analyst"]), dep.slug, pairs)
    shadow.shadow_run_score_pending(run_id=run.pk)
    run.refresh_from_db()
    return run, pairs


@pytest.mark.django_db
def test_shadow_run_start_refuses_unready_other_model_and_production(setup, project, users):
    from tests.registry.factories import make_classification_frame, make_logreg, register_ready_version

    dep, _, weak, strong = setup
    ds = users["data_scientist"]
    with pytest.raises(InvalidInput, match="production version already"):
        shadow.shadow_run_start(deployment=dep, actor=ds, candidate=weak)
    X, y, names = make_classification_frame()
    other = register_ready_version(project, ds, make_logreg(X, y), X, y, names, "binary_classification",
                                   model_name="other-model")
    with pytest.raises(InvalidInput, match="not a version of"):
        shadow.shadow_run_start(deployment=dep, actor=ds, candidate=other)
    with pytest.raises(PermissionDenied):
        shadow.shadow_run_start(deployment=dep, actor=users["reviewer"], candidate=strong)
    shadow.shadow_run_start(deployment=dep, actor=ds, candidate=strong)
    with pytest.raises(Conflict, match="already shadowing"):
        shadow.shadow_run_start(deployment=dep, actor=ds, candidate=strong)


@pytest.mark.django_db
def test_shadow_scores_logged_traffic_and_compares_with_outcomes(setup, users, client, api_client, project):
    dep, key, weak, strong = setup
    set_policy(project, users["owner"], min_labelled=100)
    run, pairs = _shadow(dep, users, strong, client, key, api_client)
    assert run.scored == 300 and run.failed == 0
    stored = {str(p.request_id): p for p in ShadowPrediction.objects.filter(run=run)}
    assert set(stored) == {r for r, _ in pairs}
    one = next(iter(stored.values()))
    assert one.production_version_id == weak.pk and one.candidate_score is not None
    cmp = run.comparison
    assert cmp["n"] == 300 and cmp["labelled"] == 300
    assert cmp["verdict"]["status"] == "better", cmp["verdict"]
    assert cmp["mcnemar"]["candidate_accuracy"] > cmp["mcnemar"]["production_accuracy"]
    assert cmp["bootstrap"]["metric"] == "auc" and cmp["bootstrap"]["low"] > 0
    # Nothing new: a second pass scores nothing and keeps the counters.
    assert shadow.shadow_run_score_pending(run_id=run.pk) == 0
    shadow.shadow_run_stop(run=run, actor=users["data_scientist"])
    run.refresh_from_db()
    assert run.status == ShadowStatus.STOPPED
    send_traffic(client, dep.slug, key, n=50, start=1600)
    assert shadow.shadow_run_score_pending(run_id=run.pk) == 0  # stopped runs do not score


@pytest.mark.django_db
def test_comparison_takes_outcomes_as_an_argument(setup, users, client, api_client, project):
    dep, key, weak, strong = setup
    set_policy(project, users["owner"], min_labelled=100)
    run, pairs = _shadow(dep, users, strong, client, key, api_client, outcomes=False)
    assert run.comparison["labelled"] == 0 and run.comparison["verdict"]["status"] == "insufficient"
    data = shadow.shadow_run_compare(run=run, outcomes=dict(pairs))
    assert data["labelled"] == 300 and data["verdict"]["status"] == "better"


@pytest.fixture
def opened(setup, users, client, api_client, project, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    dep, key, weak, strong = setup
    set_policy(project, users["owner"], min_labelled=100, min_shadow_requests=100)
    run, _ = _shadow(dep, users, strong, client, key, api_client)
    req = promotion.promotion_request_open(deployment=dep, actor=users["data_scientist"], candidate=strong,
                                           justification="Uses all features; better in shadow")
    return dep, weak, strong, req


def _approve(req, user, **kw):
    args = dict(decision="approve", comment="Evidence is convincing", evidence_hash=req.evidence_hash,
                artifact_sha256=req.artifact_sha256)
    args.update(kw)
    return promotion.promotion_request_review(request=req, reviewer=user, **args)


@pytest.mark.django_db
def test_request_freezes_evidence_with_gates_and_emails_reviewers(setup, users, client, api_client, project,
                                                                   settings, django_capture_on_commit_callbacks,
                                                                   mailoutbox):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    dep, key, weak, strong = setup
    set_policy(project, users["owner"], min_labelled=100, min_shadow_requests=100)
    _shadow(dep, users, strong, client, key, api_client)
    with django_capture_on_commit_callbacks(execute=True):
        req = promotion.promotion_request_open(deployment=dep, actor=users["data_scientist"], candidate=strong,
                                               justification="Better in shadow")
    ev = req.evidence
    gates = {g["key"]: g["passed"] for g in ev["gates"]}
    assert gates == {"validated": True, "shadowed": True, "not_worse": True, "no_critical_alert": True}
    assert req.gates_passed and req.artifact_sha256 == strong.artifact_sha256
    assert req.evidence_hash == promotion.evidence_hash(ev)
    assert ev["production"]["id"] == weak.pk and ev["candidate"]["metrics"]["accuracy"] > 0
    assert any(r["metric"] == "accuracy" for r in ev["offline"])
    assert ev["shadow"]["scored"] == 300 and ev["validation_report"]["result"] == "ready"
    assert "training_data_sha256" in ev["lineage"]["candidate"]
    recipients = {a for m in mailoutbox for a in m.to}
    assert recipients == {"owner@example.com", "reviewer@example.com"}  # never the requester
    assert "Review requested" in mailoutbox[0].subject
    with pytest.raises(Conflict, match="open promotion request"):
        promotion.promotion_request_open(deployment=dep, actor=users["owner"], candidate=strong, justification="x")


@pytest.mark.django_db
def test_requester_can_never_approve_own_request(opened, users):
    dep, weak, strong, req = opened
    with pytest.raises(PermissionDenied):
        _approve(req, users["data_scientist"])
    owner_req_dep = Deployment.objects.get(pk=dep.pk)
    assert owner_req_dep.production_version_id == weak.pk


@pytest.mark.django_db
def test_owner_who_requested_cannot_approve_either(setup, users, project):
    dep, _, _, strong = setup
    set_policy(project, users["owner"], min_shadow_requests=0)
    req = promotion.promotion_request_open(deployment=dep, actor=users["owner"], candidate=strong,
                                           justification="owner asks")
    with pytest.raises(PermissionDenied, match="someone else"):
        _approve(req, users["owner"], override_reason="gates")


@pytest.mark.django_db
def test_analyst_cannot_review(opened, users):
    with pytest.raises(PermissionDenied):
        _approve(opened[3], users["analyst"])


@pytest.mark.django_db
def test_approval_promotes_switches_production_and_writes_timeline(opened, users, mailoutbox,
                                                                   django_capture_on_commit_callbacks):
    dep, weak, strong, req = opened
    with django_capture_on_commit_callbacks(execute=True):
        _approve(req, users["reviewer"])
    req.refresh_from_db()
    dep.refresh_from_db()
    assert req.status == PromotionStatus.PROMOTED and dep.production_version_id == strong.pk
    event = dep.events.filter(kind=DeploymentEvent.Kind.PROMOTE).get()
    assert event.version_id == strong.pk and event.previous_version_id == weak.pk
    assert f"#{req.pk}" in event.reason and "reviewer" in event.reason
    assert AuditEvent.objects.filter(verb="promotion.approve", target_id=str(req.pk)).exists()
    assert AuditEvent.objects.filter(verb="deployment.promote").exists()
    assert [m.to for m in mailoutbox] == [["data_scientist@example.com"]]
    assert "approved and promoted" in mailoutbox[0].subject
    weak.refresh_from_db()
    assert weak.status == "ready"  # the old version stays available (rollback target)


@pytest.mark.django_db
def test_reject_keeps_production_as_it_was(opened, users, mailoutbox, django_capture_on_commit_callbacks):
    dep, weak, strong, req = opened
    with django_capture_on_commit_callbacks(execute=True):
        promotion.promotion_request_review(request=req, reviewer=users["reviewer"], decision="reject",
                                           comment="Not convinced", evidence_hash=req.evidence_hash,
                                           artifact_sha256=req.artifact_sha256)
    req.refresh_from_db()
    dep.refresh_from_db()
    assert req.status == PromotionStatus.REJECTED and req.decision_comment == "Not convinced"
    assert dep.production_version_id == weak.pk
    assert not dep.events.filter(kind=DeploymentEvent.Kind.PROMOTE).exists()
    assert "rejected" in mailoutbox[0].subject
    with pytest.raises(Conflict):
        _approve(req, users["owner"])


@pytest.mark.django_db
def test_approval_is_bound_to_evidence_hash_and_artifact(opened, users, project):
    dep, weak, strong, req = opened
    set_policy(project, users["owner"], approvals_required=2)
    req = promotion.promotion_request_refresh(request=req, actor=users["data_scientist"])
    seen = req.evidence_hash
    _approve(req, users["reviewer"])
    # The evidence is refreshed after the reviewer read it: the first approval stops counting...
    set_policy(project, users["owner"], tolerance=0.02)
    req = promotion.promotion_request_refresh(request=req, actor=users["data_scientist"])
    assert req.evidence_hash != seen and promotion.counting_approvals(req).count() == 0
    # ...and an approval of the old evidence is refused.
    with pytest.raises(Conflict, match="evidence changed"):
        _approve(req, users["owner"], evidence_hash=seen)
    with pytest.raises(Conflict, match="artifact"):
        _approve(req, users["owner"], artifact_sha256="0" * 64)
    # The stored artifact bytes changed under the request (same recorded hash): refused.
    from apps.common.storage import artifact_store

    path = artifact_store().path(strong.artifact_key)
    original = path.read_bytes()
    path.write_bytes(original + b"tampered")
    with pytest.raises(Conflict, match="artifact"):
        _approve(req, users["owner"])
    path.write_bytes(original)
    # The recorded artifact changed under the request: no approval counts.
    type(strong).objects.filter(pk=strong.pk).update(artifact_sha256="f" * 64)
    with pytest.raises(Conflict, match="artifact"):
        _approve(req, users["owner"])
    dep.refresh_from_db()
    assert dep.production_version_id == weak.pk


@pytest.mark.django_db
def test_two_approvals_required_promote_on_the_second(opened, users, project):
    dep, weak, strong, req = opened
    set_policy(project, users["owner"], approvals_required=2)
    assert req.approvals_required == 1  # frozen when opened...
    req = promotion.promotion_request_refresh(request=req, actor=users["data_scientist"])
    assert req.approvals_required == 2  # ...and re-frozen with the evidence
    _approve(req, users["reviewer"])
    dep.refresh_from_db()
    assert dep.production_version_id == weak.pk
    with pytest.raises(Conflict, match="already"):
        _approve(req, users["reviewer"])
    _approve(req, users["owner"])
    dep.refresh_from_db()
    assert dep.production_version_id == strong.pk


@pytest.mark.django_db
def test_failing_gate_needs_an_override_reason(setup, users, project):
    dep, _, weak, strong = setup
    req = promotion.promotion_request_open(deployment=dep, actor=users["data_scientist"], candidate=strong,
                                           justification="No shadow yet")
    failing = [g["key"] for g in promotion.failing_gates(req)]
    assert "shadowed" in failing and not req.gates_passed
    with pytest.raises(InvalidInput, match="override") as exc:
        _approve(req, users["reviewer"])
    assert exc.value.errors[0]["field"] == "override_reason"
    review = _approve(req, users["reviewer"], override_reason="Urgent fix; shadow later")
    assert review.failing_gates == failing and review.override_reason
    audit = AuditEvent.objects.get(verb="promotion.approve")
    assert audit.details["override_reason"] == "Urgent fix; shadow later"
    dep.refresh_from_db()
    assert dep.production_version_id == strong.pk


@pytest.mark.django_db
def test_rollback_is_one_owner_action_and_restores_previous(opened, users):
    dep, weak, strong, req = opened
    _approve(req, users["reviewer"])
    dep.refresh_from_db()
    with pytest.raises(PermissionDenied):
        rollout.deployment_rollback(deployment=dep, actor=users["reviewer"])
    rollout.deployment_rollback(deployment=dep, actor=users["owner"], reason="latency regression")
    dep.refresh_from_db()
    assert dep.production_version_id == weak.pk
    event = dep.events.filter(kind=DeploymentEvent.Kind.ROLLBACK).get()
    assert event.previous_version_id == strong.pk and "latency regression" in event.reason
    assert AuditEvent.objects.filter(verb="deployment.rollback").exists()


@pytest.mark.django_db
def test_inbox_lists_open_requests_for_reviewers_but_not_their_own(opened, users):
    req = opened[3]
    assert list(release_selectors.promotion_inbox_for_user(user=users["reviewer"])) == [req]
    assert list(release_selectors.promotion_inbox_for_user(user=users["data_scientist"])) == []
    assert list(release_selectors.promotion_inbox_for_user(user=users["analyst"])) == []


@pytest.mark.django_db
def test_policy_update_validates_and_is_audited(project, users):
    with pytest.raises(InvalidInput):
        set_policy(project, users["owner"], approvals_required=0)
    with pytest.raises(InvalidInput):
        set_policy(project, users["owner"], bogus=1)
    with pytest.raises(PermissionDenied):
        set_policy(project, users["data_scientist"], approvals_required=2)
    policy = set_policy(project, users["owner"], approvals_required=2, tolerance=0.05)
    assert policy.approvals_required == 2 and policy.tolerance == 0.05
    assert AuditEvent.objects.filter(verb="project.settings").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_promote_once(project, users, client):
    if connection.vendor != "postgresql":
        pytest.skip("row locks (select_for_update) need PostgreSQL")
    weak, strong = versions(project, users["data_scientist"])
    dep, _ = deploy(project, users["owner"], weak)
    set_policy(project, users["owner"], min_shadow_requests=0)
    req = promotion.promotion_request_open(deployment=dep, actor=users["data_scientist"], candidate=strong,
                                           justification="race")
    barrier = threading.Barrier(2)
    results = []

    def approve(user):
        try:
            barrier.wait()
            _approve(req, user, override_reason="test")
            results.append("ok")
        except Conflict as exc:
            results.append(f"conflict: {exc.message}")
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(users[r],)) for r in ("reviewer", "owner")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.split(":")[0] for r in results) == ["conflict", "ok"], results
    dep.refresh_from_db()
    assert dep.production_version_id == strong.pk
    assert dep.events.filter(kind=DeploymentEvent.Kind.PROMOTE).count() == 1


@pytest.mark.django_db
def test_first_version_goes_live_only_through_a_request_or_an_owner_override(opened, project, users):
    from apps.deployments.services import deployment_create, deployment_resume, deployment_version_set

    dep_live, weak, strong, _ = opened  # the project now uses promotion requests
    ds, owner = users["data_scientist"], users["owner"]
    with pytest.raises(Conflict, match="promotion request"):
        deployment_create(project=project, actor=ds, version=weak, slug="second-api", owner=ds, go_live=True)
    dep = deployment_create(project=project, actor=ds, version=weak, slug="second-api", owner=ds, go_live=False)
    with pytest.raises(Conflict, match="promotion request"):
        deployment_resume(deployment=dep, actor=ds)
    # Direct version switches are refused too once requests are in use (rollback stays possible).
    with pytest.raises(Conflict, match="promotion request"):
        deployment_version_set(deployment=dep_live, actor=owner, version=strong)
    # The first version goes live through an approved request for that same version.
    req = promotion.promotion_request_open(deployment=dep, actor=ds, candidate=weak, justification="first release")
    gates = {g["key"]: g["passed"] for g in req.evidence["gates"]}
    assert req.evidence["first_version"] and gates["shadowed"] and gates["not_worse"]
    _approve(req, users["reviewer"], override_reason="alert source")
    dep.refresh_from_db()
    assert dep.is_live and dep.production_version_id == weak.pk
    # An owner may override (audited) where the policy allows it; not when the policy forbids it.
    third = deployment_create(project=project, actor=owner, version=weak, slug="third-api", owner=owner,
                              go_live=True, override_reason="hotfix service, reviewed offline")
    assert third.is_live
    assert AuditEvent.objects.filter(verb="deployment.first_version_override").exists()
    set_policy(project, owner, first_version_owner_override=False)
    with pytest.raises(Conflict, match="does not allow owner overrides"):
        deployment_create(project=project, actor=owner, version=weak, slug="fourth-api", owner=owner,
                          go_live=True, override_reason="please")


@pytest.mark.django_db
def test_open_critical_alert_fails_its_gate_until_it_is_resolved(setup, users, project):
    from django.utils import timezone

    from apps.monitoring.models import Alert, AlertRule

    dep, _, weak, strong = setup
    rule = AlertRule.objects.create(deployment=dep, name="accuracy floor", metric="accuracy", comparator="lt",
                                    threshold=0.6, severity="critical")
    Alert.objects.create(rule=rule, deployment=dep, severity="critical", message="accuracy 0.41 < 0.6",
                         opened_at=timezone.now())
    req = promotion.promotion_request_open(deployment=dep, actor=users["data_scientist"], candidate=strong,
                                           justification="j")
    gate = next(g for g in req.evidence["gates"] if g["key"] == "no_critical_alert")
    assert not gate["passed"] and "accuracy 0.41" in gate["detail"]
    Alert.objects.filter(rule=rule).update(status="resolved")
    req = promotion.promotion_request_refresh(request=req, actor=users["data_scientist"])
    gate = next(g for g in req.evidence["gates"] if g["key"] == "no_critical_alert")
    assert gate["passed"]


@pytest.mark.django_db
def test_shadow_scorer_cache_never_serves_another_versions_model_when_a_pk_is_reused(setup):
    """A long-lived worker keeps loaded candidates; a reused primary key (flushed database, restored
    backup) must not make it score with the model it loaded for the old row."""
    _, _, weak, strong = setup
    right = shadow._predictor(strong)
    stale = shadow._predictor(weak)
    # The row now called `strong` once held another artifact: its cache entry must not be taken.
    shadow._predictors[(strong.pk, "0" * 64)] = stale
    shadow._predictors.pop((strong.pk, strong.artifact_sha256))
    loaded = shadow._predictor(strong)
    assert loaded is not stale
    assert loaded.feature_names == right.feature_names


@pytest.mark.django_db
def test_first_deployment_of_a_new_project_is_not_live_until_a_reviewer_approves(project, users, client):
    """No unreviewed first release by default: the project has never promoted anything, yet its very first
    deployment cannot go live without an approved request; an owner's override needs a reason and is audited."""
    import json

    from apps.deployments.services import deployment_api_key_create, deployment_create, deployment_resume
    from apps.releases.models import PromotionRequest

    assert not PromotionRequest.objects.filter(project=project).exists()
    ds, owner = users["data_scientist"], users["owner"]
    weak, _ = versions(project, ds)
    with pytest.raises(Conflict, match="approved promotion request"):
        deployment_create(project=project, actor=ds, version=weak, slug="first-api", owner=ds)
    with pytest.raises(Conflict, match="approved promotion request"):  # an empty reason is no override
        deployment_create(project=project, actor=owner, version=weak, slug="first-api", owner=owner,
                          override_reason="   ")
    dep = deployment_create(project=project, actor=ds, version=weak, slug="first-api", owner=ds, go_live=False)
    _, key = deployment_api_key_create(deployment=dep, actor=ds, name="svc")
    with pytest.raises(Conflict, match="approved promotion request"):
        deployment_resume(deployment=dep, actor=ds)
    body = json.dumps({"instances": [{"f0": 0.1, "f1": 0.2, "f2": 0.3, "f3": 0.4}]})

    def call():
        return client.generic("POST", "/api/v1/deployments/first-api/predict", body,
                              content_type="application/json", headers={"Authorization": f"Bearer {key}"})

    assert call().status_code == 503  # paused: not live
    req = promotion.promotion_request_open(deployment=dep, actor=ds, candidate=weak, justification="first release")
    dep.refresh_from_db()
    assert not dep.is_live and call().status_code == 503  # a request alone changes nothing
    _approve(req, users["reviewer"])
    dep.refresh_from_db()
    assert dep.is_live and call().status_code == 200
    # The owner's explicit, audited exception; switched off entirely by the project's policy.
    other = deployment_create(project=project, actor=owner, version=weak, slug="urgent-api", owner=owner,
                              override_reason="regulator deadline; review scheduled")
    assert other.is_live
    audit = AuditEvent.objects.get(verb="deployment.first_version_override")
    assert audit.details["reason"] == "regulator deadline; review scheduled" and audit.actor == owner
    set_policy(project, owner, first_version_owner_override=False)
    with pytest.raises(Conflict, match="does not allow owner overrides"):
        deployment_create(project=project, actor=owner, version=weak, slug="later-api", owner=owner,
                          override_reason="please")


def test_shadow_scores_a_candidate_with_text_features_on_the_logged_typed_inputs(project, users, client):
    import json

    import skops.io as sio

    from apps.common.storage import artifact_store
    from apps.deployments import serving
    from apps.registry.models import ModelVersion
    from tests.deployments.factories import churn_frame, churn_pipeline, make_ready_mixed_version

    owner, ds = users["owner"], users["data_scientist"]
    serving.CACHE.clear()
    serving.CACHE.clear_models()
    v1 = make_ready_mixed_version(project=project, actor=owner)
    X, y = churn_frame(n=300, seed=5)
    stored = artifact_store().put_bytes(sio.dumps(churn_pipeline(X, y)), suffix=".skops")
    v2 = ModelVersion.objects.create(model=v1.model, version=2, status="ready", artifact_key=stored.key,
                                     artifact_sha256=stored.sha256, artifact_size=stored.size,
                                     artifact_format="skops", safe_artifact_key=stored.key, serving_format="skops",
                                     classes=v1.classes, created_by=owner)
    dep, key = deploy(project, owner, v1, slug="churn-api")
    run = shadow.shadow_run_start(deployment=dep, actor=ds, candidate=v2)
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in X.head(30).to_dict("records")]
    resp = client.post("/api/v1/deployments/churn-api/predict", json.dumps({"instances": rows}),
                       content_type="application/json", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.content
    from apps.deployments import logpipe

    logpipe.drain()
    shadow.shadow_run_score_pending(run_id=run.pk)
    run.refresh_from_db()
    assert run.scored == 30 and run.failed == 0, run.last_error if hasattr(run, "last_error") else run
    serving.CACHE.clear()

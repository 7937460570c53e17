"""Declared primary metrics: every one tested on the shadow outcomes; a significantly worse one fails the
verdict and the "not worse" gate, whatever accuracy says — and the reviewer's page says why."""

import uuid

import numpy as np
import pytest

from apps.releases import shadow_stats as S


def accurate_but_badly_ranked(n: int = 1500, seed: int = 3):
    """Production: well-ranked scores, a bad threshold (lower accuracy). Candidate: a good threshold (higher
    accuracy) but much noisier scores (lower ROC AUC)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    z = y + rng.normal(0, 0.8, n)
    prod_score = 1 / (1 + np.exp(-(2 * z - 1)))
    prod_label = (z > 1.2).astype(int)
    cand_z = z + rng.normal(0, 1.2, n)
    cand_score = 1 / (1 + np.exp(-(2 * cand_z - 1)))
    cand_label = (z > 0.5).astype(int)
    return y, prod_label, cand_label, prod_score, cand_score


def test_significantly_worse_roc_auc_makes_the_verdict_worse_although_accuracy_is_better():
    y, pl, cl, ps, cs = accurate_but_badly_ranked()
    result = S.compare(task="binary_classification", production_output=pl.tolist(), candidate_output=cl.tolist(),
                       production_score=ps.tolist(), candidate_score=cs.tolist(), y_true=y.tolist(),
                       labelled_mask=np.ones(len(y), bool), classes=[0, 1], positive=1, n_boot=500,
                       metrics=("accuracy", "roc_auc", "log_loss"))
    assert result.mcnemar.candidate_accuracy > result.mcnemar.production_accuracy  # better on accuracy …
    tests = {m.metric: m for m in result.metrics}
    assert tests["accuracy"].significantly_better and not tests["accuracy"].significantly_worse
    assert tests["roc_auc"].significantly_worse and tests["roc_auc"].high < 0  # … significantly worse on AUC
    assert tests["roc_auc"].candidate == pytest.approx(S.auc(y, cs))
    assert result.verdict.status == "worse" and "ROC AUC" in result.verdict.message
    assert set(tests) == {"accuracy", "roc_auc", "log_loss"}  # every declared metric is reported
    data = result.to_dict()
    assert [m["metric"] for m in data["metrics"]] == ["accuracy", "roc_auc", "log_loss"]


def test_margin_lets_a_small_significant_drop_pass_and_metrics_without_data_say_so():
    y, pl, cl, ps, cs = accurate_but_badly_ranked()
    drop = S.auc(y, ps) - S.auc(y, cs)
    lenient = S.compare(task="binary_classification", production_output=pl.tolist(), candidate_output=cl.tolist(),
                        production_score=ps.tolist(), candidate_score=cs.tolist(), y_true=y.tolist(),
                        labelled_mask=np.ones(len(y), bool), positive=1, n_boot=300, metrics=("roc_auc",),
                        margin=drop + 0.1)
    assert not lenient.metrics[0].significantly_worse and lenient.verdict.status != "worse"
    none = S.compare(task="binary_classification", production_output=pl.tolist(), candidate_output=cl.tolist(),
                     metrics=("roc_auc", "rmse"))
    assert [m.available for m in none.metrics] == [False, False]
    with pytest.raises(ValueError, match="Unknown primary metric"):
        S.compare(task="regression", production_output=[1.0], candidate_output=[1.0], metrics=("r2",))


def test_paired_bootstrap_accuracy_log_loss_and_mae_match_their_definitions():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1.0])
    a = np.array([0, 1, 0, 0, 1, 1, 1, 1.0])
    b = np.array([0, 1, 1, 0, 1, 1, 1, 1.0])
    acc = S.paired_bootstrap(y, a, b, metric="accuracy", n_boot=200)
    assert acc.production == pytest.approx(6 / 8) and acc.candidate == pytest.approx(7 / 8) and acc.higher_is_better
    p = np.array([0.1, 0.8, 0.6, 0.3, 0.9, 0.2, 0.7, 0.6])
    ll = S.paired_bootstrap(y, p, np.clip(p + 0.05, 0, 1), metric="log_loss", n_boot=200)
    from sklearn.metrics import log_loss, mean_absolute_error

    assert ll.production == pytest.approx(log_loss(y, p)) and not ll.higher_is_better
    mae = S.paired_bootstrap(y, p, b, metric="mae", n_boot=200)
    assert mae.production == pytest.approx(mean_absolute_error(y, p))


@pytest.mark.django_db
def test_gate_fails_on_a_significantly_worse_roc_auc_and_the_reviewer_page_says_why(project, users,
                                                                                   logged_in_client):
    from django.utils import timezone

    from apps.releases.models import ShadowPrediction, ShadowRun
    from apps.releases.services import promotion, shadow

    from .factories import deploy, versions

    weak, strong = versions(project, users["data_scientist"])
    dep, _ = deploy(project, users["owner"], weak)
    y, pl, cl, ps, cs = accurate_but_badly_ranked()
    now = timezone.now()
    run = ShadowRun.objects.create(deployment=dep, candidate=strong, since=now, scored=len(y),
                                   started_by=users["data_scientist"])
    ids = [uuid.uuid4() for _ in y]
    ShadowPrediction.objects.bulk_create([
        ShadowPrediction(run=run, request_id=rid, log_id=i, created_at=now, production_version_id=weak.pk,
                         production_output=int(pl[i]), production_score=float(ps[i]), candidate_output=int(cl[i]),
                         candidate_score=float(cs[i])) for i, rid in enumerate(ids)])
    comparison = shadow.shadow_run_compare(run=run, outcomes={str(rid): int(y[i]) for i, rid in enumerate(ids)})
    assert comparison["mcnemar"]["candidate_accuracy"] > comparison["mcnemar"]["production_accuracy"]
    assert comparison["verdict"]["status"] == "worse"
    req = promotion.promotion_request_open(deployment=dep, actor=users["data_scientist"], candidate=strong,
                                           justification="More accurate in shadow")
    gate = next(g for g in req.evidence["gates"] if g["key"] == "not_worse")
    assert not gate["passed"] and not req.gates_passed
    assert "ROC AUC" in gate["detail"] and "significantly worse" in gate["detail"]
    page = logged_in_client(users["reviewer"]).get(f"/projects/fraud/promotions/{req.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="cmp-primary-metrics"' in html and "ROC AUC" in html and "Accuracy" in html
    assert "Significantly worse on a primary metric" in html


@pytest.mark.django_db
def test_shadow_evidence_counts_only_requests_after_the_candidate_was_registered(project, users,
                                                                                 logged_in_client):
    """A backfill over traffic older than the candidate (e.g. the retraining window that trained it) is not
    evidence: with only such rows the verdict waits, and the page states the window and the row counts."""
    from datetime import timedelta

    from apps.releases.models import ShadowPrediction, ShadowRun
    from apps.releases.services import shadow

    from .factories import deploy, versions

    weak, strong = versions(project, users["data_scientist"])
    dep, _ = deploy(project, users["owner"], weak)
    y, pl, cl, ps, cs = accurate_but_badly_ranked(n=600)
    before, after = strong.created_at - timedelta(hours=2), strong.created_at + timedelta(seconds=5)
    run = ShadowRun.objects.create(deployment=dep, candidate=strong, since=before, scored=len(y),
                                   started_by=users["data_scientist"])
    ids = [uuid.uuid4() for _ in y]
    ShadowPrediction.objects.bulk_create([
        ShadowPrediction(run=run, request_id=rid, log_id=i, created_at=before if i < 500 else after,
                         production_version_id=weak.pk, production_output=int(pl[i]), production_score=float(ps[i]),
                         candidate_output=int(cl[i]), candidate_score=float(cs[i])) for i, rid in enumerate(ids)])
    outcomes = {str(rid): int(y[i]) for i, rid in enumerate(ids)}
    data = shadow.shadow_run_compare(run=run, outcomes=outcomes)
    assert data["n"] == 100 and data["labelled"] == 100  # only the 100 rows after registration
    assert data["window"]["rows"] == 100 and data["window"]["excluded_in_sample"] == 500
    assert data["verdict"]["status"] == "insufficient" and "out-of-sample only" in data["verdict"]["message"]
    page = logged_in_client(users["data_scientist"]).get(f"/projects/fraud/deployments/{dep.slug}/shadow/{run.pk}/")
    html = page.content.decode()
    assert 'id="cmp-window"' in html and "500 earlier requests not counted" in html and "100 requests" in html


@pytest.mark.django_db
def test_a_shadow_backfill_starts_at_the_candidates_training_data_cutoff(project, users, client, logged_in_client):
    """Traffic logged before the candidate existed (what a retraining trained on) is never scored: a 24 h
    backfill starts at the candidate's registration, so every scored row is out of sample and the page
    states where the window starts and how many rows it holds."""
    from apps.releases.models import ShadowPrediction
    from apps.releases.services import shadow
    from tests.registry.factories import register_ready_version

    from .factories import MODEL, deploy, frame, send_traffic, strong_estimator, versions

    (weak,) = versions(project, users["data_scientist"], kinds=("weak",))
    dep, key = deploy(project, users["owner"], weak)
    send_traffic(client, dep.slug, key, n=120)  # before the candidate: in sample for a retraining
    X, y, names = frame()
    strong = register_ready_version(project, users["data_scientist"], strong_estimator(X.iloc[:600], y[:600]),
                                    X.iloc[600:1200], y[600:1200], names, "binary_classification",
                                    model_name=MODEL, model=weak.model)
    send_traffic(client, dep.slug, key, n=80, start=1400)  # after: out of sample
    run = shadow.shadow_run_start(deployment=dep, actor=users["data_scientist"], candidate=strong, backfill_hours=24)
    assert run.since == strong.created_at
    shadow.shadow_run_score_pending(run_id=run.pk, force_compare=True)
    run.refresh_from_db()
    assert run.scored == 80
    assert not ShadowPrediction.objects.filter(run=run, created_at__lte=strong.created_at).exists()
    assert run.comparison["window"]["rows"] == 80 and run.comparison["window"]["excluded_in_sample"] == 0
    html = logged_in_client(users["data_scientist"]).get(
        f"/projects/fraud/deployments/{dep.slug}/shadow/{run.pk}/").content.decode()
    assert "the candidate&#x27;s training-data cut-off" in html or "the candidate's training-data cut-off" in html
    assert "80 requests scored" in html and "80 requests, 0 with outcomes" in html

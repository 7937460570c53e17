"""Shadow statistics against scipy / scikit-learn and hand-computed values (no database)."""

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from apps.releases import shadow_stats as S


def test_module_imports_no_django():
    code = "import apps.releases.shadow_stats, sys; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_agreement_rate_and_confusion_by_hand():
    prod = [0, 0, 1, 1, 1, 0]
    cand = [0, 1, 1, 0, 1, 0]
    res = S.agreement(prod, cand, classes=[0, 1])
    assert res.n == 6 and res.agree == 4
    assert res.rate == pytest.approx(4 / 6)
    # rows: production label, columns: candidate label
    assert res.confusion == ((2, 1), (1, 2))
    assert res.classes == ("0", "1")


def test_agreement_compares_labels_as_strings_and_adds_unseen_classes():
    res = S.agreement(["1", 2, "a"], [1, "2", "b"], classes=[1, 2])
    assert res.agree == 2
    assert res.classes == ("1", "2", "a", "b")
    assert sum(map(sum, res.confusion)) == 3


def test_agreement_empty_is_nan_and_length_mismatch_refused():
    assert math.isnan(S.agreement([], []).rate)
    with pytest.raises(ValueError):
        S.agreement([1], [1, 2])


def test_difference_distribution_matches_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=500), rng.normal(size=500)
    d = S.difference_distribution(a, b, bins=10)
    assert d.n == 500
    assert d.mean == pytest.approx(np.mean(b - a))
    assert d.std == pytest.approx(np.std(b - a, ddof=1))
    assert d.quantiles["p50"] == pytest.approx(np.median(b - a))
    assert sum(d.counts) == 500 and len(d.edges) == 11
    same = S.difference_distribution([0.2, 0.3], [0.2, 0.3])
    assert same.max_abs == 0 and sum(same.counts) == 2


@pytest.mark.parametrize(("b", "c"), [(3, 12), (0, 7), (10, 10), (25, 40), (1, 0)])
def test_mcnemar_exact_equals_scipy_binomtest(b, c):
    _, p = S.mcnemar_from_counts(b, c, method="exact")
    assert p == pytest.approx(sps.binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-12)


def test_mcnemar_hand_values():
    # b=3, c=12: exact two-sided p = 2 * P(X <= 3), X ~ Bin(15, 1/2) = 2 * 576 / 32768
    _, p = S.mcnemar_from_counts(3, 12, method="exact")
    assert p == pytest.approx(2 * 576 / 32768)
    # mid-p = 2 * (P(X <= 3) - P(X = 3) / 2) = 2 * (576 - 455/2) / 32768
    _, p = S.mcnemar_from_counts(3, 12, method="mid-p")
    assert p == pytest.approx(2 * (576 - 455 / 2) / 32768)
    # chi2 with continuity correction: (|3 - 12| - 1)^2 / 15 = 64/15
    stat, p = S.mcnemar_from_counts(3, 12, method="chi2")
    assert stat == pytest.approx(64 / 15)
    assert p == pytest.approx(sps.chi2.sf(64 / 15, 1))
    # no discordant pairs, or equal counts: no evidence
    assert S.mcnemar_from_counts(0, 0)[1] == 1.0
    assert S.mcnemar_from_counts(10, 10, method="mid-p")[1] == pytest.approx(1.0)


def test_mcnemar_from_labels_counts_discordant_pairs():
    y = [1, 1, 0, 0, 1, 0, 1, 1]
    prod = [1, 0, 0, 1, 1, 1, 0, 1]  # right: 0,2,4,7
    cand = [1, 1, 0, 0, 0, 0, 1, 1]  # right: 0,1,2,3,5,6,7
    res = S.mcnemar(y, prod, cand, method="exact")
    assert (res.b, res.c) == (1, 4)
    assert res.production_correct == 4 and res.candidate_correct == 7
    assert res.candidate_accuracy == pytest.approx(7 / 8)
    assert res.p_value == pytest.approx(sps.binomtest(1, 5, 0.5).pvalue)


def test_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=300)
    s = np.round(rng.random(300) + 0.3 * y, 1)  # rounding makes ties
    assert S.auc(y, s) == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert math.isnan(S.auc([1, 1], [0.2, 0.3]))


def _scored(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    weak = 1 / (1 + np.exp(-(0.3 * (2 * y - 1) + rng.normal(size=n))))
    strong = 1 / (1 + np.exp(-(2.0 * (2 * y - 1) + rng.normal(size=n))))
    return y, weak, strong


def test_paired_bootstrap_auc_matches_scipy_bootstrap():
    y, weak, strong = _scored()
    ours = S.paired_bootstrap(y, weak, strong, metric="auc", n_boot=3000, seed=7)

    def stat(yy, aa, bb, axis=-1):
        return S._auc_rows(np.atleast_2d(yy).astype(bool), np.atleast_2d(bb)) - \
            S._auc_rows(np.atleast_2d(yy).astype(bool), np.atleast_2d(aa))

    ref = sps.bootstrap((y, weak, strong), stat, paired=True, vectorized=True, n_resamples=3000,
                        method="percentile", confidence_level=0.95, random_state=np.random.default_rng(7))
    assert ours.difference == pytest.approx(S.auc(y, strong) - S.auc(y, weak))
    # Different random streams: the two percentile intervals agree to Monte-Carlo precision.
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.01)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.01)
    assert ours.low > 0 and ours.candidate_better


def test_paired_bootstrap_is_reproducible_with_seed_and_identical_models_give_zero():
    y, weak, _ = _scored(n=200, seed=2)
    a = S.paired_bootstrap(y, weak, weak, metric="auc", n_boot=500, seed=3)
    assert a.low == 0 and a.high == 0 and not a.excludes_zero
    r1 = S.paired_bootstrap(y, weak, weak ** 2, metric="auc", n_boot=500, seed=3)
    r2 = S.paired_bootstrap(y, weak, weak ** 2, metric="auc", n_boot=500, seed=3)
    assert (r1.low, r1.high) == (r2.low, r2.high)


def test_paired_bootstrap_rmse_by_hand_and_direction():
    rng = np.random.default_rng(5)
    y = rng.normal(size=400)
    good = y + rng.normal(scale=0.1, size=400)
    bad = y + rng.normal(scale=1.0, size=400)
    res = S.paired_bootstrap(y, bad, good, metric="rmse", n_boot=1000, seed=1)
    assert res.production == pytest.approx(np.sqrt(np.mean((y - bad) ** 2)))
    assert res.candidate == pytest.approx(np.sqrt(np.mean((y - good) ** 2)))
    assert res.high < 0 and res.candidate_better  # lower RMSE is better
    worse = S.paired_bootstrap(y, good, bad, metric="rmse", n_boot=1000, seed=1)
    assert worse.excludes_zero and not worse.candidate_better


def test_paired_bootstrap_skips_one_class_resamples():
    res = S.paired_bootstrap([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.9], [0.1, 0.2, 0.3, 0.8], metric="auc",
                             n_boot=400, seed=0)
    assert 0 < res.n_boot < 400


def test_verdict_needs_minimum_sample():
    y, weak, strong = _scored(n=100)
    cmp = S.compare(task="binary_classification", production_output=(weak > 0.5).astype(int),
                    candidate_output=(strong > 0.5).astype(int), production_score=weak, candidate_score=strong,
                    y_true=y, labelled_mask=np.ones(100, bool), classes=[0, 1], positive=1, min_labelled=200,
                    n_boot=200)
    assert cmp.verdict.status == "insufficient"
    assert cmp.mcnemar is not None and cmp.mcnemar.p_value < 0.05  # computed, but not shown as a verdict


def test_compare_better_candidate_and_identical_candidate():
    y, weak, strong = _scored(n=800)
    mask = np.zeros(800, bool)
    mask[:500] = True
    kw = dict(task="binary_classification", y_true=y, labelled_mask=mask, classes=[0, 1], positive=1,
              min_labelled=200, n_boot=500, seed=0)
    better = S.compare(production_output=(weak > 0.5).astype(int), candidate_output=(strong > 0.5).astype(int),
                       production_score=weak, candidate_score=strong, **kw)
    assert better.labelled == 500 and better.n == 800
    assert better.verdict.status == "better"
    assert better.bootstrap.candidate_better
    same = S.compare(production_output=(weak > 0.5).astype(int), candidate_output=(weak > 0.5).astype(int),
                     production_score=weak, candidate_score=weak, **kw)
    assert same.verdict.status == "no_difference"
    assert same.agreement.rate == 1.0
    d = same.to_dict()
    assert d["verdict"]["status"] == "no_difference" and d["mcnemar"]["b"] == 0


def test_compare_regression_uses_rmse_bootstrap():
    rng = np.random.default_rng(9)
    y = rng.normal(size=300)
    prod = y + rng.normal(scale=1.0, size=300)
    cand = y + rng.normal(scale=0.2, size=300)
    res = S.compare(task="regression", production_output=prod, candidate_output=cand, y_true=y,
                    labelled_mask=np.ones(300, bool), min_labelled=100, n_boot=500)
    assert res.agreement is None and res.difference.n == 300
    assert res.verdict.status == "better"
    assert res.to_dict()["bootstrap"]["metric"] == "rmse"

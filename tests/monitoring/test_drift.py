"""Pure drift statistics (no database): equal to scipy / hand-computed values, power, false-alarm rate."""

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats as st
from scipy.spatial.distance import jensenshannon

from apps.monitoring import drift


def test_drift_module_imports_no_django():
    code = ("import apps.monitoring.drift, apps.monitoring.performance, apps.monitoring.dle, sys; "
            "assert 'django' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def _numeric(rng, n, loc=0.0, scale=1.0):
    return rng.normal(loc, scale, n)


def test_ks_statistic_matches_scipy_within_sketch_resolution():
    rng = np.random.default_rng(1)
    ref, cur = _numeric(rng, 20000), _numeric(rng, 5000, loc=0.1)
    res = drift.numeric_drift("x", drift.NumericReference.from_values(ref), cur)
    expected = st.ks_2samp(ref, cur, method="asymp")
    assert res.ks_statistic <= expected.statistic + 1 / 20000
    assert res.ks_statistic == pytest.approx(expected.statistic, abs=0.0011)


def test_ks_pvalue_is_scipys_asymptotic_formula_with_true_sample_sizes():
    rng = np.random.default_rng(2)
    ref, cur = _numeric(rng, 3000), _numeric(rng, 1000, loc=0.05)
    expected = st.ks_2samp(ref, cur, method="asymp")
    assert drift.ks_pvalue(expected.statistic, 3000, 1000) == pytest.approx(expected.pvalue, rel=1e-12)


def test_psi_hand_computed():
    assert drift.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(-0.25 * math.log(0.5) + 0.25 * math.log(1.5))
    # decile bins of a uniform reference; the window sits entirely in the lower half
    ref = drift.NumericReference.from_values(np.linspace(0, 1, 100001))
    cur = np.linspace(0.0001, 0.4999, 10000)
    res = drift.numeric_drift("u", ref, cur)
    eps = drift.PSI_EPSILON
    expected = 5 * (0.2 - 0.1) * math.log(2) + 5 * (eps - 0.1) * math.log(eps / 0.1)
    assert res.psi == pytest.approx(expected, rel=1e-3)


def test_wasserstein_matches_scipy_and_is_normalised_by_reference_sd():
    rng = np.random.default_rng(3)
    ref, cur = rng.gamma(2.0, 3.0, 50000), rng.gamma(2.0, 3.3, 20000)
    res = drift.numeric_drift("g", drift.NumericReference.from_values(ref), cur)
    expected = st.wasserstein_distance(ref, cur)
    assert res.wasserstein == pytest.approx(expected, rel=0.02)
    assert res.wasserstein_normalized == pytest.approx(res.wasserstein / ref.std(ddof=1))


def test_chi2_is_the_two_sample_contingency_test_including_unseen_categories():
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    cur = ["a"] * 40 + ["b"] * 30 + ["c"] * 25 + ["d"] * 5
    res = drift.categorical_drift("c", drift.CategoricalReference.from_values(ref), cur)
    chi2, p, dof, _ = st.chi2_contingency(np.array([[50, 30, 20, 0], [40, 30, 25, 5]]), correction=False)
    assert (res.chi2_statistic, res.chi2_pvalue, res.chi2_dof) == (pytest.approx(chi2), pytest.approx(p), dof)
    assert res.unseen_categories == ("d",) and res.unseen_rate == pytest.approx(0.05)
    assert res.js_distance == pytest.approx(jensenshannon([50, 30, 20, 0], [40, 30, 25, 5], base=2))


def test_data_quality_missing_out_of_range_and_histogram():
    ref = drift.NumericReference.from_values(np.linspace(0, 10, 1001), bins=10)
    cur = np.array([np.nan, -1.0, 0.0, 5.0, 10.0, 11.0, np.nan, 3.0])
    res = drift.numeric_drift("x", ref, cur)
    assert res.missing_rate == pytest.approx(2 / 8)
    assert res.out_of_range_rate == pytest.approx(2 / 6)
    assert sum(res.current_histogram) == 4  # 0, 3, 5, 10 lie inside the reference edges
    assert res.n_current == 6


def test_reference_from_profile_entry():
    entry = {"quantiles": list(np.linspace(0, 1, 1001)), "histogram": {"edges": [0, 0.5, 1], "counts": [5, 5]},
             "min": 0, "max": 1, "mean": 0.5, "std": 0.29, "missing_rate": 0.1, "n": 1000}
    ref = drift.reference_from_profile(entry)
    assert isinstance(ref, drift.NumericReference) and ref.n == 900
    cat = drift.reference_from_profile({"frequencies": {"x": 3, "y": 1}, "n": 4})
    assert isinstance(cat, drift.CategoricalReference) and cat.n == 4


@pytest.mark.parametrize("n", [10_000])
def test_subtle_shifts_are_detected_at_10k_rows(n):
    rng = np.random.default_rng(4)
    ref = drift.NumericReference.from_values(rng.normal(5, 2, n))
    assert drift.numeric_drift("x", ref, rng.normal(5 + 0.3 * 2, 2, n)).drifted
    cats = np.array(["a", "b", "c", "d"])
    cref = drift.CategoricalReference.from_values(cats[rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])])
    res = drift.categorical_drift("c", cref, cats[rng.choice(4, n, p=[0.34, 0.3, 0.22, 0.14])])
    assert res.drifted, res


def test_identical_distributions_flagged_at_most_at_the_nominal_rate():
    rng = np.random.default_rng(5)
    reps, alpha = 300, 0.05
    limit = alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)  # nominal + 3 standard errors
    ks_flags = chi_flags = gof_flags = verdicts = 0
    cats = np.array(["a", "b", "c", "d", "e"])
    p = [0.4, 0.25, 0.15, 0.12, 0.08]
    for _ in range(reps):
        ref = drift.NumericReference.from_values(rng.lognormal(0, 1, 2000))
        res = drift.numeric_drift("x", ref, rng.lognormal(0, 1, 2000))
        ks_flags += res.ks_pvalue < alpha
        cref = drift.CategoricalReference.from_values(cats[rng.choice(5, 2000, p=p)])
        cur = cats[rng.choice(5, 2000, p=p)]
        cres = drift.categorical_drift("c", cref, cur)
        chi_flags += cres.chi2_pvalue < alpha
        verdicts += res.drifted + cres.drifted
        # the goodness-of-fit test that treats the reference proportions as exact
        expected = np.array(cres.reference_frequencies) / sum(cres.reference_frequencies) * cres.n_current
        gof_flags += st.chisquare(cres.current_frequencies, expected).pvalue < alpha
    assert ks_flags / reps <= limit
    assert chi_flags / reps <= limit
    assert verdicts / (2 * reps) <= limit
    assert gof_flags / reps > chi_flags / reps  # the contingency test is the honest one


def test_dataset_share_and_per_feature_override():
    rng = np.random.default_rng(6)
    refs = {f"x{i}": drift.NumericReference.from_values(rng.normal(size=5000)) for i in range(4)}
    cur = {f"x{i}": rng.normal(size=5000) for i in range(4)}
    cur["x0"] = cur["x0"] + 0.5
    cur["x1"] = cur["x1"] + 0.5
    res = drift.dataset_drift(refs, cur, thresholds=drift.Thresholds(dataset_share=0.5))
    assert res.drifted_features == ("x0", "x1") and res.share_drifted == 0.5 and res.drifted
    res = drift.dataset_drift(refs, cur, overrides={"x1": {"wasserstein": 0.9}})
    assert res.drifted_features == ("x0",) and not res.drifted


def test_prediction_distribution_drift():
    rng = np.random.default_rng(8)
    refs = {"x": drift.NumericReference.from_values(rng.normal(size=3000))}
    pred_ref = drift.NumericReference.from_values(rng.beta(2, 5, 3000))
    res = drift.dataset_drift(refs, {"x": rng.normal(size=3000)}, prediction_reference=pred_ref,
                              prediction_values=rng.beta(3, 4, 3000))
    assert res.prediction is not None and res.prediction.drifted and not res.drifted


def test_domain_classifier_catches_a_joint_shift_no_marginal_shows():
    rng = np.random.default_rng(9)
    n = 3000
    a = rng.normal(size=n)
    ref = {"a": a, "b": a + 0.3 * rng.normal(size=n)}
    a2 = rng.normal(size=n)
    cur = {"a": a2, "b": -a2 + 0.3 * rng.normal(size=n)}  # same marginals, correlation flipped
    refs = {k: drift.NumericReference.from_values(v) for k, v in ref.items()}
    res = drift.dataset_drift(refs, cur, reference_sample=ref)
    assert res.n_drifted == 0
    assert res.domain.drifted and res.domain.auc > 0.8
    same = drift.domain_classifier(ref, {"a": a2, "b": a2 + 0.3 * rng.normal(size=n)})
    assert not same.drifted and same.auc < 0.55


def test_bool_features_compare_equal_whatever_the_input_mode_logged():
    ref = drift.CategoricalReference.from_values(np.array(["True"] * 300 + ["False"] * 700, dtype=object))
    logged_by_entity_mode = np.array(["1"] * 30 + ["0"] * 70, dtype=object)  # 1.0/0.0 as monitoring reads them
    aligned = drift.align_bool_values(ref, logged_by_entity_mode)
    assert set(aligned) == {"True", "False"}
    res = drift.categorical_drift("is_mobile", ref, aligned)
    assert not res.drifted and res.unseen_rate == 0.0
    assert drift.categorical_drift("is_mobile", ref, logged_by_entity_mode).drifted  # the bug this fixes
    other = drift.CategoricalReference.from_values(np.array(["1", "0"], dtype=object))
    assert drift.align_bool_values(other, logged_by_entity_mode) is logged_by_entity_mode


def test_text_features_use_chi_square_with_the_unseen_category_rate():
    ref = drift.CategoricalReference.from_values(np.array(["DE"] * 500 + ["FR"] * 500, dtype=object))
    cur = np.array(["DE"] * 40 + ["FR"] * 40 + ["BR"] * 20, dtype=object)
    res = drift.feature_drift("country", ref, cur)
    assert res.kind == "categorical" and res.chi2_pvalue < 0.05 and res.unseen_rate == pytest.approx(0.2)
    assert res.unseen_categories == ("BR",) and res.drifted

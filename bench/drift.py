"""Benchmark: one drift check on N rows x 20 columns vs a plain scipy loop (issue 7).

    .venv/bin/python bench/drift.py            # N = 100,000 and 1,000,000
    .venv/bin/python bench/drift.py 200000     # custom N

Two windows of N rows, 15 numeric + 5 categorical columns, seeded shifts in 5 of them (3 numeric,
2 categorical). The reference side is precomputed as a profile (not timed), as in production where
it is built when the model version is registered. The check computes KS, PSI, normalised
Wasserstein, data quality and histograms for every numeric column, chi-square + Jensen–Shannon for
every categorical column, Holm's adjustment across them, the prediction-distribution drift, the PCA
reconstruction error of the numeric block (model fitted per version, not timed) and the domain
classifier. The floor is
a plain loop of ``scipy.stats.ks_2samp`` over the numeric columns and ``chi2_contingency`` (tables
by ``numpy.unique``) over the categorical ones, measured in the same run.
"""

import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas  # noqa: E402,F401
import sklearn.ensemble  # noqa: E402,F401 - warm imports so they are not timed
import sklearn.model_selection  # noqa: E402,F401

from apps.monitoring import drift  # noqa: E402

SHIFTED = {"num_00", "num_01", "num_02", "cat_00", "cat_01"}
CATS = np.array(["alpha", "beta", "gamma", "delta", "epsilon"], dtype=object)
CAT_P = np.array([0.4, 0.3, 0.15, 0.1, 0.05])


def make_window(n: int, rng: np.random.Generator, *, shifted: bool) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for i in range(15):
        kind = i % 5
        if kind == 0:
            x = rng.normal(10.0, 2.0, n)
        elif kind == 1:
            x = rng.lognormal(0.0, 0.6, n)
        elif kind == 2:
            x = rng.exponential(3.0, n)
        elif kind == 3:
            x = rng.uniform(-1, 1, n)
        else:
            x = rng.poisson(4, n).astype(float)
        name = f"num_{i:02d}"
        if shifted and name == "num_00":
            x = x + 0.3 * 2.0  # 0.3-sd mean shift
        if shifted and name == "num_01":
            x = x * 1.25  # scale change
        if shifted and name == "num_02":
            x = np.where(rng.random(n) < 0.1, x + 10.0, x)  # 10% of rows moved to the tail
        x[rng.random(n) < 0.01] = np.nan
        cols[name] = x
    for j in range(5):
        p = CAT_P
        name = f"cat_{j:02d}"
        if shifted and name == "cat_00":
            p = np.array([0.34, 0.3, 0.18, 0.12, 0.06])  # moderate frequency change
        values = CATS[rng.choice(5, size=n, p=p)]
        if shifted and name == "cat_01":
            values = values.copy()
            values[rng.random(n) < 0.05] = "zeta"  # an unseen category
        cols[name] = values
    return cols


def run(n: int) -> None:
    rng = np.random.default_rng(7)
    reference = make_window(n, rng, shifted=False)
    current = make_window(n, rng, shifted=True)
    ref_pred = rng.beta(2, 5, n)
    cur_pred = rng.beta(2, 5, n)
    # precomputed reference side (the model version's profile) + a bounded raw sample for the classifier
    refs = {k: (drift.CategoricalReference.from_values(v) if k.startswith("cat") else drift.NumericReference.from_values(v))
            for k, v in reference.items()}
    pred_ref = drift.NumericReference.from_values(ref_pred)
    idx = rng.choice(n, size=2000, replace=False)
    sample = {k: v[idx] for k, v in reference.items()}
    # the PCA drift model is fitted once per model version (cached), so it is not timed either
    pca = drift.pca_fit({k: v for k, v in reference.items() if k.startswith("num")}, chunk_size=n // 10)

    t0 = time.perf_counter()
    for k, v in reference.items():
        if k.startswith("num"):
            a, b = v[~np.isnan(v)], current[k][~np.isnan(current[k])]
            st.ks_2samp(a, b)
        else:
            ca, na = np.unique(v, return_counts=True)
            cb, nb = np.unique(current[k], return_counts=True)
            cats = sorted(set(ca) | set(cb))
            table = np.array([[dict(zip(ca, na, strict=True)).get(c, 0) for c in cats], [dict(zip(cb, nb, strict=True)).get(c, 0) for c in cats]])
            st.chi2_contingency(table)
    t_scipy = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = drift.dataset_drift(refs, current, prediction_reference=pred_ref, prediction_values=cur_pred,
                                 reference_sample=sample, pca=pca)
    t_check = time.perf_counter() - t0

    flagged = set(result.drifted_features)
    false_flags = sorted(flagged - SHIFTED)
    missed = sorted(SHIFTED - flagged)
    print(f"N={n:>9,}  plain scipy loop {t_scipy:6.2f} s   drift check {t_check:6.2f} s   "
          f"ratio {t_check / t_scipy:5.2f}  (goal <= 0.5)")
    print(f"   flagged: {sorted(flagged)}")
    print(f"   missed seeded shifts: {missed or 'none'}   false flags: {false_flags or 'none'}   "
          f"prediction drifted: {result.prediction.drifted}   domain AUC {result.domain.auc:.3f}   "
          f"PCA error {result.pca.error:.3f} (reference {result.pca.reference_error:.3f}) drifted: {result.pca.drifted}")
    for f in result.features:
        if f.feature in SHIFTED or f.drifted:
            stat = (f"KS D={f.ks_statistic:.4f} p={f.ks_pvalue:.2g} PSI={f.psi:.3f} W/sd={f.wasserstein_normalized:.3f}"
                    if f.kind == "numeric" else f"chi2 p={f.chi2_pvalue:.2g} JS={f.js_distance:.3f} unseen={f.unseen_rate:.3f}")
            print(f"     {f.feature}: {stat}")


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]
    for size in sizes:
        run(size)

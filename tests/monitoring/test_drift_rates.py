"""Drift verdicts on simulated data (no database): false alarms at or below the nominal rate on identical
distributions (numeric, categorical, mixed; several window sizes), and sensitivity at 5,000 rows to a
mean shift, a variance change, a heavier tail, a category-share change and a correlation change (with
categorical columns present). Seeded: the figures are the same at every run."""

import math

import numpy as np
import pytest

from apps.monitoring import drift as D

ALPHA = 0.05
N_REF = 50_000


def _world(rng, n, kind="mixed", *, rho=0.8):
    out = {}
    if kind in ("numeric", "mixed"):
        a = rng.normal(size=n)
        out.update(x=rng.normal(size=n), a=a, b=rho * a + math.sqrt(1 - rho * rho) * rng.normal(size=n),
                   e=rng.exponential(size=n))
    if kind in ("categorical", "mixed"):
        out.update(c1=rng.choice(list("ABC"), size=n, p=[0.3, 0.5, 0.2]).astype(object),
                   c2=rng.choice(list("PQ"), size=n).astype(object),
                   c3=rng.choice([f"k{i}" for i in range(12)], size=n).astype(object))
    return out


def _references(ref):
    return {k: D.NumericReference.from_values(v) if v.dtype != object else D.CategoricalReference.from_values(v)
            for k, v in ref.items()}


def _upper(rate: float, runs: int) -> float:
    """The nominal rate plus 2.33 binomial standard errors (one-sided 99 %)."""
    return rate + 2.33 * math.sqrt(rate * (1 - rate) / runs)


@pytest.mark.parametrize(("kind", "size"), [("numeric", 500), ("numeric", 5000), ("numeric", 20000),
                                            ("categorical", 500), ("categorical", 5000), ("mixed", 1000),
                                            ("mixed", 5000)])
def test_false_alarms_on_identical_distributions_at_most_nominal(kind, size):
    runs = 250
    ref = _world(np.random.default_rng(0), N_REF, kind)
    refs = _references(ref)
    numeric = [k for k, v in ref.items() if v.dtype != object]
    pca = D.pca_fit({k: ref[k] for k in numeric}) if len(numeric) > 1 else None  # z-test path (no chunk size)
    windows_alarmed = pca_alarms = 0
    for r in range(runs):
        res = D.dataset_drift(refs, _world(np.random.default_rng(10**6 + r), size, kind), pca=pca)
        windows_alarmed += res.n_drifted > 0
        pca_alarms += bool(res.pca and res.pca.drifted)
    # Holm: the chance that a window with no drift raises ANY feature alert is at most alpha
    assert windows_alarmed / runs <= _upper(ALPHA, runs), windows_alarmed / runs
    assert pca_alarms / runs <= _upper(ALPHA, runs), pca_alarms / runs


@pytest.fixture(scope="module")
def reference():
    ref = _world(np.random.default_rng(0), N_REF)
    numeric = ["x", "a", "b", "e"]
    return _references(ref), D.pca_fit({k: ref[k] for k in numeric}, chunk_size=5000)


def _shifted(kind, rng):
    w = _world(rng, 5000)
    if kind == "mean":
        w["x"] = w["x"] + 0.1  # 0.1 reference sd
    elif kind == "variance":
        w["x"] = w["x"] * math.sqrt(1.2)  # variance × 1.2
    elif kind == "tail":
        w["x"] = rng.standard_t(5, size=5000) / math.sqrt(5 / 3)  # same mean and variance, heavier tails
    elif kind == "category":
        w["c1"] = rng.choice(list("ABC"), size=5000, p=[0.34, 0.46, 0.2]).astype(object)  # A: 30 % → 34 %
    elif kind == "correlation":
        w = _world(rng, 5000, rho=0.5)  # corr(a, b) 0.8 → 0.5, every marginal unchanged
    return w


@pytest.mark.parametrize(("kind", "feature"), [("mean", "x"), ("variance", "x"), ("tail", "x"),
                                               ("category", "c1"), ("correlation", None)])
def test_sensitivity_at_5000_rows(reference, kind, feature):
    refs, pca = reference
    runs, found = 40, 0
    for r in range(runs):
        res = D.dataset_drift(refs, _shifted(kind, np.random.default_rng(5000 + r)), pca=pca)
        found += (feature in res.drifted_features) if feature else res.pca.drifted
    assert found / runs >= 0.9, (kind, found / runs)


def test_correlation_change_is_invisible_to_the_marginals_but_not_to_pca(reference):
    refs, pca = reference
    res = D.dataset_drift(refs, _shifted("correlation", np.random.default_rng(1)), pca=pca)
    assert not {"a", "b"} & set(res.drifted_features)
    assert res.pca.drifted and res.pca.error > res.pca.upper  # a weaker correlation: harder to reconstruct

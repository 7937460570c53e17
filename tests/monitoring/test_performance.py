"""Realized metrics with intervals, and CBPE (no database)."""

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from apps.monitoring import performance as perf


def test_classification_metrics_equal_sklearn_and_carry_intervals():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    score = np.clip(y * 0.3 + rng.random(2000) * 0.7, 0, 1)
    pred = (score >= 0.5).astype(int)
    m = perf.classification_metrics(y, pred, score)
    assert m["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"].value == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"].value == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"].value == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, score))
    assert m["log_loss"].value == pytest.approx(skm.log_loss(y, score))
    for v in m.values():
        assert v.low <= v.value <= v.high and v.n > 0


def test_wilson_interval_hand_computed():
    lo, hi = perf.wilson(8, 10)
    assert (lo, hi) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))


def test_multiclass_macro_f1():
    y = np.array(["a", "b", "c", "a", "b", "c", "a"])
    p = np.array(["a", "b", "b", "a", "c", "c", "b"])
    m = perf.classification_metrics(y, p)
    assert m["f1"].value == pytest.approx(skm.f1_score(y, p, average="macro"))
    assert m["precision"].value == pytest.approx(skm.precision_score(y, p, average="macro"))


def test_regression_metrics_equal_sklearn():
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    p = y + rng.normal(scale=0.5, size=500)
    m = perf.regression_metrics(y, p)
    assert m["mae"].value == pytest.approx(skm.mean_absolute_error(y, p))
    assert m["rmse"].value == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert m["r2"].value == pytest.approx(skm.r2_score(y, p))
    assert m["r2"].low < m["r2"].value < m["r2"].high


def _world(rng, n, shift=0.0, scale=1.0):
    X = rng.normal(size=(n, 3)) * scale + np.array([shift, 0, 0])
    logits = 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.5 * X[:, 2] + 0.8
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(int)
    return X, y


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_cbpe_tracks_realized_accuracy_without_and_under_covariate_shift(method):
    """Tolerance: 0.025 absolute on 5,000 rows (≈ 3.5 standard errors of the realized accuracy)."""
    rng = np.random.default_rng(2)
    X_train, y_train = _world(rng, 5000)
    model = LogisticRegression().fit(X_train, y_train)
    X_ref, y_ref = _world(rng, 5000)
    cal = perf.calibrator_fit(model.predict_proba(X_ref)[:, 1], y_ref, method=method)
    X_cur, y_cur = _world(rng, 5000)
    s = model.predict_proba(X_cur)[:, 1]
    est = perf.cbpe_estimate(s, cal)
    real = perf.classification_metrics(y_cur, (s >= 0.5).astype(int), s)
    assert abs(est["accuracy"].value - real["accuracy"].value) <= 0.025
    assert abs(est["roc_auc"].value - real["roc_auc"].value) <= 0.025
    assert abs(est["f1"].value - real["f1"].value) <= 0.03
    # covariate shift toward the decision boundary: accuracy falls, the estimate follows it
    X_sh, y_sh = _world(rng, 5000, shift=-0.53, scale=0.5)
    s2 = model.predict_proba(X_sh)[:, 1]
    est2 = perf.cbpe_estimate(s2, cal)
    real2 = perf.classification_metrics(y_sh, (s2 >= 0.5).astype(int), s2)
    drop = real["accuracy"].value - real2["accuracy"].value
    assert drop > 0.08
    assert abs(est2["accuracy"].value - real2["accuracy"].value) <= 0.025
    assert est["accuracy"].value - est2["accuracy"].value == pytest.approx(drop, abs=0.03)


def test_expected_auc_equals_realized_auc_for_hard_labels():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.8])
    labels = np.array([0, 0, 1, 1, 0])
    assert perf.expected_auc(scores, labels.astype(float)) == pytest.approx(skm.roc_auc_score(labels, scores))


def test_calibrator_round_trips_through_a_dict():
    cal = perf.calibrator_fit([0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1])
    again = perf.Calibrator.from_dict(cal.to_dict())
    assert np.allclose(cal([0.15, 0.8]), again([0.15, 0.8]))

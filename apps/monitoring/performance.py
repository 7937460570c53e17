"""Performance per window, realized and estimated. Pure numpy/scipy/scikit-learn, no Django.

Realized metrics (labels known) come with ``n`` and a two-sided confidence interval (default 95 %):

* accuracy, precision, recall: Wilson score interval of the binomial proportion;
* F1 (binary or macro): parametric bootstrap of the confusion matrix — the cells are redrawn from
  ``Multinomial(n, cells / n)``, which is exactly the row bootstrap for any metric of the confusion
  matrix, in O(B·k²) instead of O(B·n);
* ROC AUC: Hanley & McNeil (1982) standard error; log loss: mean ± z·sd/√n;
* regression: MAE mean ± z·sd/√n; RMSE from the MSE interval (square root of its ends); R² by a row
  bootstrap on at most 20,000 rows.

Estimated performance (labels not yet known), binary classifiers only: confidence-based performance
estimation (CBPE). A calibrator (isotonic regression by default, or Platt scaling) is fitted on the
reference data (the model's scores and the true labels); in a window, each row's calibrated
probability ``c_i`` is the chance that its label is 1, so with the model's decision ``ŷ_i = score_i ≥
threshold`` the expected confusion matrix is ``TP = Σ_{ŷ=1} c``, ``FP = Σ_{ŷ=1} (1-c)``, ``FN = Σ_{ŷ=0} c``,
``TN = Σ_{ŷ=0} (1-c)``; accuracy/precision/recall/F1 follow from it, and the expected AUC is
``Σ_{s_i>s_j} c_i (1-c_j) / Σ_{i≠j} c_i (1-c_j)`` (ties count one half). This assumes the
label given the score does not change (covariate shift, not concept drift) — which is why the
estimate is stored next to the realized value and monitored itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float | None
    low: float | None
    high: float | None
    n: int


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson(successes: float, n: int, *, confidence: float = 0.95) -> tuple[float | None, float | None]:
    if n <= 0:
        return None, None
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _mean_ci(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    m = float(values.mean())
    if values.size < 2:
        return m, m, m
    half = _z(confidence) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return m, m - half, m + half


def _f1_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Binary: F1 of class 1 (last); multiclass: macro F1. ``cm`` has shape (..., k, k) [true, pred]."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
    fp = cm.sum(axis=-2) - tp
    fn = cm.sum(axis=-1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return f1[..., -1] if cm.shape[-1] == 2 else f1.mean(axis=-1)


def auc_hanley_mcneil(auc: float, n_pos: int, n_neg: int) -> float:
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def classification_metrics(y_true: Sequence, y_pred: Sequence, y_score: Sequence | None = None, *,
                           confidence: float = 0.95, n_bootstrap: int = 500, seed: int = 0,
                           positive=1) -> dict[str, MetricValue]:
    """Accuracy, precision, recall, F1 (+ ROC AUC and log loss when binary scores are given).

    Binary when the labels are {0, 1} (or ``positive`` and one other); precision/recall/F1 are those
    of ``positive``. Multiclass: macro averages (precision/recall intervals then by the bootstrap).
    ``y_score`` is the probability of ``positive`` (binary).
    """
    from sklearn.metrics import log_loss, roc_auc_score

    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    n = int(yt.size)
    out: dict[str, MetricValue] = {}
    if n == 0:
        return {k: MetricValue(k, None, None, None, 0) for k in ("accuracy", "precision", "recall", "f1")}
    labels = sorted(set(yt.tolist()) | set(yp.tolist()), key=str)
    binary = len(labels) <= 2
    if binary:
        others = [v for v in labels if v != positive]
        labels = others[:1] + [positive]
        if len(labels) == 1:
            labels = ["__none__", positive]
    index = {v: i for i, v in enumerate(labels)}
    k = len(labels)
    ti = np.array([index[v] for v in yt.tolist()])
    pi = np.array([index[v] for v in yp.tolist()])
    cm = np.bincount(ti * k + pi, minlength=k * k).reshape(k, k)
    correct = int(np.trace(cm))
    lo, hi = wilson(correct, n, confidence=confidence)
    out["accuracy"] = MetricValue("accuracy", correct / n, lo, hi, n)
    rng = np.random.default_rng(seed)
    boot = rng.multinomial(n, (cm / n).ravel(), size=n_bootstrap).reshape(n_bootstrap, k, k)
    alpha = (1 - confidence) / 2
    if binary:
        tp, fp, fn = cm[1, 1], cm[0, 1], cm[1, 0]
        lo, hi = wilson(tp, tp + fp, confidence=confidence)
        out["precision"] = MetricValue("precision", tp / (tp + fp) if tp + fp else None, lo, hi, int(tp + fp))
        lo, hi = wilson(tp, tp + fn, confidence=confidence)
        out["recall"] = MetricValue("recall", tp / (tp + fn) if tp + fn else None, lo, hi, int(tp + fn))
    else:
        tp = np.diag(cm).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            for name, denom_axis in (("precision", 0), ("recall", 1)):
                def macro(c, axis=denom_axis):
                    d = c.sum(axis=-2 if axis == 0 else -1)
                    t = np.diagonal(c, axis1=-2, axis2=-1)
                    return np.where(d > 0, t / np.maximum(d, 1), 0.0).mean(axis=-1)
                samples = macro(boot)
                out[name] = MetricValue(name, float(macro(cm)), float(np.quantile(samples, alpha)),
                                        float(np.quantile(samples, 1 - alpha)), n)
    f1_samples = _f1_from_confusion(boot)
    out["f1"] = MetricValue("f1", float(_f1_from_confusion(cm)), float(np.quantile(f1_samples, alpha)),
                            float(np.quantile(f1_samples, 1 - alpha)), n)
    if binary and y_score is not None:
        s = np.asarray(y_score, dtype=float)
        y01 = (ti == 1).astype(int)
        n_pos, n_neg = int(y01.sum()), int(n - y01.sum())
        if n_pos and n_neg:
            auc = float(roc_auc_score(y01, s))
            se = auc_hanley_mcneil(auc, n_pos, n_neg)
            z = _z(confidence)
            out["roc_auc"] = MetricValue("roc_auc", auc, max(0.0, auc - z * se), min(1.0, auc + z * se), n)
        eps = 1e-15
        p = np.clip(s, eps, 1 - eps)
        losses = -(y01 * np.log(p) + (1 - y01) * np.log(1 - p))
        m, lo, hi = _mean_ci(losses, confidence)
        assert abs(m - log_loss(y01, p, labels=[0, 1])) < 1e-9
        out["log_loss"] = MetricValue("log_loss", m, max(0.0, lo), hi, n)
    return out


def regression_metrics(y_true: Sequence, y_pred: Sequence, *, confidence: float = 0.95, n_bootstrap: int = 200,
                       seed: int = 0) -> dict[str, MetricValue]:
    yt = np.asarray(y_true, dtype=float)
    yp = np.asarray(y_pred, dtype=float)
    n = int(yt.size)
    if n == 0:
        return {k: MetricValue(k, None, None, None, 0) for k in ("mae", "rmse", "r2")}
    err = yp - yt
    mae, lo, hi = _mean_ci(np.abs(err), confidence)
    out = {"mae": MetricValue("mae", mae, max(0.0, lo), hi, n)}
    mse, lo, hi = _mean_ci(err * err, confidence)
    out["rmse"] = MetricValue("rmse", math.sqrt(mse), math.sqrt(max(lo, 0.0)), math.sqrt(hi), n)
    ss_tot = float(((yt - yt.mean()) ** 2).sum())
    r2 = 1 - float((err * err).sum()) / ss_tot if ss_tot > 0 else None
    if r2 is not None and n > 2:
        rng = np.random.default_rng(seed)
        m = min(n, 20000)
        idx = rng.integers(0, n, size=(n_bootstrap, m))  # resamples of m rows; widths rescaled to n below
        t, e = yt[idx], err[idx]
        tot = ((t - t.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        samples = 1 - (e * e).sum(axis=1) / np.where(tot > 0, tot, np.nan)
        alpha = (1 - confidence) / 2
        qlo, qhi = np.nanquantile(samples, alpha), np.nanquantile(samples, 1 - alpha)
        shrink = math.sqrt(m / n)
        out["r2"] = MetricValue("r2", r2, r2 - (r2 - qlo) * shrink, r2 + (qhi - r2) * shrink, n)
    else:
        out["r2"] = MetricValue("r2", r2, None, None, n)
    return out


# --- CBPE ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibrator:
    """A fitted score → probability map. ``method`` is "isotonic" or "platt"."""

    method: str
    x: tuple[float, ...] = ()  # isotonic: breakpoints (scores)
    y: tuple[float, ...] = ()  # isotonic: calibrated probabilities at the breakpoints
    a: float = 1.0  # platt: p = sigmoid(a * logit(score) + b)
    b: float = 0.0

    def __call__(self, scores: Sequence[float]) -> np.ndarray:
        s = np.asarray(scores, dtype=float)
        if self.method == "isotonic":
            return np.clip(np.interp(s, self.x, self.y), 0.0, 1.0)
        z = self.a * _logit(s) + self.b
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return {"method": self.method, "x": list(self.x), "y": list(self.y), "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        return cls(method=data["method"], x=tuple(data.get("x", ())), y=tuple(data.get("y", ())),
                   a=float(data.get("a", 1.0)), b=float(data.get("b", 0.0)))


def _logit(s: np.ndarray) -> np.ndarray:
    p = np.clip(s, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def calibrator_fit(scores: Sequence[float], labels: Sequence[int], *, method: str = "isotonic") -> Calibrator:
    """Fit on the reference data: the model's probability of class 1 and the true 0/1 labels."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=float)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
        return Calibrator("isotonic", tuple(float(v) for v in iso.X_thresholds_),
                          tuple(float(v) for v in iso.y_thresholds_))
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6).fit(_logit(s).reshape(-1, 1), y)
        return Calibrator("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
    raise ValueError(f"unknown calibration method {method!r}")


def expected_auc(scores: np.ndarray, calibrated: np.ndarray) -> float | None:
    """``(Σ_{s_i > s_j} c_i (1 - c_j) + ½ Σ_{s_i = s_j} c_i (1 - c_j)) / (Σ c_i · Σ (1 - c_j))``: the area
    under the expected ROC curve (expected TP and FP counts at every score threshold, trapezoids
    between them) — the pairs include each row with itself, as NannyML's estimate does."""
    order = np.argsort(scores, kind="mergesort")
    s, c = scores[order], calibrated[order]
    neg = 1.0 - c
    # group ties
    uniq, start = np.unique(s, return_index=True)
    pos_g = np.add.reduceat(c, start)
    neg_g = np.add.reduceat(neg, start)
    neg_below = np.cumsum(neg_g) - neg_g
    numerator = float((pos_g * neg_below).sum() + 0.5 * (pos_g * neg_g).sum())
    denominator = float(c.sum() * neg.sum())
    return numerator / denominator if denominator > 0 else None


def cbpe_estimate(scores: Sequence[float], calibrator: Calibrator, *, threshold: float = 0.5,
                  confidence: float = 0.95) -> dict[str, MetricValue]:
    """Expected accuracy / precision / recall / F1 / ROC AUC of a window of binary scores.

    The accuracy interval is the sampling spread of the realized accuracy around its expectation,
    ``z·sqrt(Σ q_i (1 - q_i)) / n`` with ``q_i`` the chance row i is classified correctly.
    """
    s = np.asarray(scores, dtype=float)
    n = int(s.size)
    if n == 0:
        return {k: MetricValue(k, None, None, None, 0) for k in ("accuracy", "precision", "recall", "f1", "roc_auc")}
    c = calibrator(s)
    yhat = s >= threshold
    tp, fp = float(c[yhat].sum()), float((1 - c[yhat]).sum())
    fn, tn = float(c[~yhat].sum()), float((1 - c[~yhat]).sum())
    q = np.where(yhat, c, 1 - c)
    acc = (tp + tn) / n
    half = _z(confidence) * math.sqrt(float((q * (1 - q)).sum())) / n
    out = {"accuracy": MetricValue("accuracy", acc, max(0.0, acc - half), min(1.0, acc + half), n)}
    out["precision"] = MetricValue("precision", tp / (tp + fp) if tp + fp > 0 else None, None, None, n)
    out["recall"] = MetricValue("recall", tp / (tp + fn) if tp + fn > 0 else None, None, None, n)
    out["f1"] = MetricValue("f1", 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else None, None, None, n)
    out["roc_auc"] = MetricValue("roc_auc", expected_auc(s, c), None, None, n)
    return out


# --- CBPE with the model's own decisions, sampling-error bands, reference-learned thresholds ---------

BINARY_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")


@dataclass(frozen=True)
class BandedMetric:
    """A metric of one window with its sampling error, its band (value ∓ ``band_sd``·sampling error)
    and the alert thresholds learned from the reference's chunks (mean ∓ ``threshold_sd``·sd)."""

    name: str
    value: float | None
    sampling_error: float | None
    low: float | None
    high: float | None
    n: int
    lower_threshold: float | None = None
    upper_threshold: float | None = None

    @property
    def alert(self) -> bool:
        if self.value is None:
            return False
        return bool((self.lower_threshold is not None and self.value < self.lower_threshold)
                    or (self.upper_threshold is not None and self.value > self.upper_threshold))


def binary_realized(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray | None) -> dict[str, float | None]:
    """ROC AUC (on the scores), accuracy, precision, recall, F1 (on the decisions) of 0/1 arrays —
    the same figures as scikit-learn's ``roc_auc_score``/``accuracy_score``/``precision_score``/
    ``recall_score``/``f1_score`` (``zero_division=0``), in closed form."""
    y = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    n = y.size
    if n == 0:
        return dict.fromkeys(BINARY_METRICS)
    tp = int(np.sum(y & p))
    fp = int(np.sum(~y & p))
    fn = int(np.sum(y & ~p))
    out: dict[str, float | None] = {"accuracy": float(np.sum(y == p)) / n,
                                    "precision": tp / (tp + fp) if tp + fp else 0.0,
                                    "recall": tp / (tp + fn) if tp + fn else 0.0,
                                    "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
                                    "roc_auc": None}
    if y_score is not None and 0 < y.sum() < n:
        from sklearn.metrics import roc_auc_score

        out["roc_auc"] = float(roc_auc_score(y, np.asarray(y_score, dtype=float)))
    return out


def _sim_metrics(y: np.ndarray, yhat: np.ndarray, ranks: np.ndarray | None) -> dict[str, np.ndarray]:
    """The five metrics of each row of ``y`` (draws × n, 0/1) for fixed decisions and score ranks."""
    yf = y.astype(float)
    pos = yf.sum(axis=1)
    n = y.shape[1]
    tp = yf @ yhat.astype(float)
    pred_pos = float(yhat.sum())
    fp = pred_pos - tp
    fn = pos - tp
    tn = n - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"accuracy": (tp + tn) / n,
               "precision": np.where(pred_pos > 0, tp / max(pred_pos, 1.0), 0.0),
               "recall": np.where(pos > 0, tp / np.maximum(pos, 1.0), 0.0),
               "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1.0), 0.0)}
        if ranks is not None:
            neg = n - pos
            auc = (yf @ ranks - pos * (pos + 1) / 2) / (pos * neg)
            out["roc_auc"] = np.where((pos > 0) & (neg > 0), auc, np.nan)
    return out


def cbpe(scores, decisions, calibrator: Calibrator, *, band_sd: float = 3.0, n_draws: int = 400, seed: int = 0,
         thresholds: dict[str, tuple[float | None, float | None]] | None = None,
         reference_components: dict[str, tuple[float, float]] | None = None) -> dict[str, BandedMetric]:
    """Confidence-based performance estimation of a window of a binary classifier.

    ``scores`` are the positive-class probabilities, ``decisions`` the model's own 0/1 decisions
    (whatever its decision rule). With ``c = calibrator(scores)`` the chance each row is positive,
    the estimate is the expectation of each metric over labels ``y_i ~ Bernoulli(c_i)``: closed form
    for accuracy/precision/recall/F1 from the expected confusion matrix, ``expected_auc`` for ROC AUC.
    The sampling error is the standard deviation of the realized metric over ``n_draws`` seeded draws
    of those labels — how far the realized value of *this* window can fall from the estimate by
    chance alone — or, when ``reference_components`` are given and larger, the unconditional sampling
    error learned from the reference (:func:`reference_sampling_components`). ``thresholds`` maps a
    metric to its (lower, upper) alert thresholds.
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=float)
    yhat = np.asarray(decisions, dtype=bool)
    n = int(s.size)
    thresholds = thresholds or {}
    if n == 0:
        return {m: BandedMetric(m, None, None, None, None, 0, *thresholds.get(m, (None, None)))
                for m in BINARY_METRICS}
    c = calibrator(s)
    tp, fp = float(c[yhat].sum()), float((1 - c[yhat]).sum())
    fn, tn = float(c[~yhat].sum()), float((1 - c[~yhat]).sum())
    values = {"accuracy": (tp + tn) / n, "precision": tp / (tp + fp) if tp + fp > 0 else 0.0,
              "recall": tp / (tp + fn) if tp + fn > 0 else 0.0,
              "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0,
              "roc_auc": expected_auc(s, c)}
    rng = np.random.default_rng(seed)
    sims: dict[str, list] = {m: [] for m in BINARY_METRICS}
    ranks = rankdata(s)
    for start in range(0, n_draws, 50):  # bounded memory: 50 draws × n at a time
        y = rng.random((min(50, n_draws - start), n)) < c
        for m, v in _sim_metrics(y, yhat, ranks).items():
            sims[m].append(v)
    out = {}
    for m in BINARY_METRICS:
        v = values[m]
        draws = np.concatenate(sims[m])
        draws = draws[np.isfinite(draws)]
        se = float(draws.std()) if draws.size > 1 else None
        comp = (reference_components or {}).get(m)
        if comp is not None and comp[1] > 0:
            ref_se = comp[0] / math.sqrt(n * comp[1])
            se = ref_se if se is None else max(se, ref_se)
        low = high = None
        if v is not None and se is not None:
            low, high = max(0.0, v - band_sd * se), min(1.0, v + band_sd * se)
        lo_t, hi_t = thresholds.get(m, (None, None))
        out[m] = BandedMetric(m, v, se, low, high, n, lo_t, hi_t)
    return out


def reference_sampling_components(y_true, y_pred, y_score) -> dict[str, tuple[float, float]]:
    """NannyML's reference-based sampling-error components ``(sd, fraction)`` per metric; the sampling
    error of a window of ``n`` rows is ``sd / sqrt(n · fraction)``. Accuracy: sd of the 0/1
    correctness; precision (recall): sd of correctness among predicted (true) positives; F1: sd of the
    per-row TP/FP/FN contributions rescaled by ``len / (TP + (FP + FN)/2)``; ROC AUC: sd of each
    positive's share of negatives ranked below it (on the class that is the minority)."""
    y = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    n = y.size
    out: dict[str, tuple[float, float]] = {}
    if n == 0:
        return out
    out["accuracy"] = (float(np.std(y == p)), 1.0)
    if p.any():
        out["precision"] = (float(np.std(y[p])), float(p.mean()))
    if y.any():
        out["recall"] = (float(np.std(p[y])), float(y.mean()))
    tp, fp, fn = int(np.sum(y & p)), int(np.sum(~y & p)), int(np.sum(y & ~p))
    if tp + fp + fn:
        obs = np.r_[np.ones(tp), np.zeros(fp + fn)] * ((tp + fp + fn) / (tp + (fp + fn) * 0.5))
        out["f1"] = (float(np.std(obs)), (tp + fp + fn) / n)
    if y_score is not None and 0 < y.sum() < n:
        s = np.asarray(y_score, dtype=float)
        yy, ss = (y, s) if y.mean() <= 0.5 else (~y, -s)
        order = np.argsort(ss, kind="mergesort")
        yo = yy[order]
        neg_below = np.cumsum(~yo)[yo]  # negatives ranked below each positive
        n_pos, n_neg = int(yo.sum()), int((~yo).sum())
        out["roc_auc"] = (float(np.std(neg_below / n_neg)), n_pos / n)
    return out


def chunk_thresholds(values: Sequence[float | None], *, k: float = 3.0, lower_bound: float | None = 0.0,
                     upper_bound: float | None = 1.0) -> tuple[float | None, float | None]:
    """``mean ∓ k·sd`` (numpy sd, ddof 0) of a statistic over the reference's chunks, clipped to the
    metric's range; (None, None) with fewer than two finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size < 2:
        return None, None
    lo, hi = float(v.mean() - k * v.std()), float(v.mean() + k * v.std())
    if lower_bound is not None and lo <= lower_bound:
        lo = None
    if upper_bound is not None and hi >= upper_bound:
        hi = None
    return lo, hi


def reference_chunks(n: int, chunk_size: int) -> list[slice]:
    """Consecutive chunks of ``chunk_size`` rows (the trailing partial chunk when at least half full)."""
    out = [slice(i, i + chunk_size) for i in range(0, n - chunk_size + 1, chunk_size)]
    rest = n % chunk_size
    if rest and rest >= chunk_size // 2:
        out.append(slice(n - rest, n))
    return out


def binary_reference_thresholds(y_true, y_pred, y_score, *, chunk_size: int, k: float = 3.0
                                ) -> dict[str, tuple[float | None, float | None]]:
    """Alert thresholds of each binary metric: the realized metric over the reference's chunks of the
    window size, ``mean ∓ k·sd`` (as NannyML does)."""
    y, p = np.asarray(y_true), np.asarray(y_pred)
    s = np.asarray(y_score, dtype=float) if y_score is not None else None
    per_chunk = [binary_realized(y[c], p[c], s[c] if s is not None else None)
                 for c in reference_chunks(len(y), chunk_size)]
    return {m: chunk_thresholds([r[m] for r in per_chunk], k=k) for m in BINARY_METRICS}

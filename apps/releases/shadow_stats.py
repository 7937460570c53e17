"""Shadow comparison statistics: production vs candidate on the same logged requests (pure: no Django).

Inputs are aligned arrays (row i of every array is the same logged request); outputs are frozen
dataclasses with a ``to_dict()`` for storing as JSON.

- ``agreement``: share of requests on which both models give the same label, and the confusion table
  production label × candidate label (classifiers).
- ``difference_distribution``: candidate − production for numeric outputs (regressors) or scores
  (positive-class probability): mean, spread, quantiles and a histogram.
- ``mcnemar``: paired test of accuracy on requests with known outcomes. Only discordant pairs count:
  ``b`` = production right & candidate wrong, ``c`` = production wrong & candidate right. Methods: "exact"
  (two-sided binomial on min(b, c) of b + c at p = ½), "mid-p" (the exact p-value with only half the
  probability of the observed count, Fagerland et al. 2013; the default) and "chi2" (with Edwards'
  continuity correction).
- ``paired_bootstrap``: percentile confidence interval of metric(candidate) − metric(production) with the
  SAME resampled rows for both models; metrics "auc" (higher is better) and "rmse" (lower is better).
  The seed is explicit, so a result is reproducible.
- ``compare``: everything above plus a verdict, shown only when the minimum-sample rule is met, and a
  paired-bootstrap test of every declared primary metric (accuracy, ROC AUC, log loss, RMSE, MAE) with a
  non-inferiority margin: a significantly worse primary metric makes the verdict "worse".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats as sps

MCNEMAR_METHODS = ("mid-p", "exact", "chi2")


def _to_dict(obj) -> dict:
    def clean(v):
        if isinstance(v, float):
            return None if math.isnan(v) or math.isinf(v) else v
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return clean(asdict(obj))


# --- agreement -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    n: int
    agree: int
    rate: float  # NaN when n == 0
    classes: tuple  # row/column order of ``confusion`` (as strings)
    confusion: tuple[tuple[int, ...], ...]  # confusion[i][j]: production said classes[i], candidate classes[j]

    def to_dict(self) -> dict:
        return _to_dict(self)


def _labels(values) -> np.ndarray:
    return np.asarray([str(v) for v in values], dtype=object)


def agreement(production, candidate, classes=None) -> Agreement:
    """Agreement rate and confusion of two label sequences (compared as strings: 1 == "1")."""
    p, c = _labels(production), _labels(candidate)
    if p.shape != c.shape:
        raise ValueError(f"production and candidate have different lengths ({p.size} vs {c.size})")
    names = [str(x) for x in classes] if classes is not None else sorted(set(p.tolist()) | set(c.tolist()))
    for extra in sorted((set(p.tolist()) | set(c.tolist())) - set(names)):
        names.append(extra)
    index = {name: i for i, name in enumerate(names)}
    table = np.zeros((len(names), len(names)), dtype=np.int64)
    if p.size:
        np.add.at(table, (np.array([index[x] for x in p]), np.array([index[x] for x in c])), 1)
    agree = int(np.trace(table))
    n = int(p.size)
    return Agreement(n=n, agree=agree, rate=agree / n if n else float("nan"), classes=tuple(names),
                     confusion=tuple(tuple(int(v) for v in row) for row in table))


# --- difference distribution ---------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    n: int
    mean: float
    std: float
    mean_abs: float
    max_abs: float
    quantiles: dict = field(default_factory=dict)  # "p05", "p25", "p50", "p75", "p95"
    edges: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return _to_dict(self)


def difference_distribution(production, candidate, bins: int = 30) -> Difference:
    """Distribution of candidate − production (numbers: regression outputs or scores)."""
    p = np.asarray(production, dtype="float64")
    c = np.asarray(candidate, dtype="float64")
    if p.shape != c.shape:
        raise ValueError(f"production and candidate have different lengths ({p.size} vs {c.size})")
    d = c - p
    d = d[np.isfinite(d)]
    if d.size == 0:
        nan = float("nan")
        return Difference(n=0, mean=nan, std=nan, mean_abs=nan, max_abs=nan)
    qs = np.quantile(d, [0.05, 0.25, 0.5, 0.75, 0.95])
    lo, hi = float(d.min()), float(d.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(d, bins=bins, range=(lo, hi))
    return Difference(
        n=int(d.size), mean=float(d.mean()), std=float(d.std(ddof=1)) if d.size > 1 else 0.0,
        mean_abs=float(np.abs(d).mean()), max_abs=float(np.abs(d).max()),
        quantiles={k: float(v) for k, v in zip(("p05", "p25", "p50", "p75", "p95"), qs, strict=True)},
        edges=tuple(float(e) for e in edges), counts=tuple(int(x) for x in counts))


# --- McNemar -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class McNemar:
    n: int  # paired requests with an outcome
    production_correct: int
    candidate_correct: int
    b: int  # production right, candidate wrong
    c: int  # production wrong, candidate right
    statistic: float  # chi2 statistic (chi2) or min(b, c) (exact / mid-p)
    p_value: float
    method: str

    @property
    def production_accuracy(self) -> float:
        return self.production_correct / self.n if self.n else float("nan")

    @property
    def candidate_accuracy(self) -> float:
        return self.candidate_correct / self.n if self.n else float("nan")

    def to_dict(self) -> dict:
        out = _to_dict(self)
        out["production_accuracy"] = _finite(self.production_accuracy)
        out["candidate_accuracy"] = _finite(self.candidate_accuracy)
        return out


def _finite(x: float):
    return None if x is None or not math.isfinite(x) else float(x)


def mcnemar_from_counts(b: int, c: int, *, method: str = "mid-p") -> tuple[float, float]:
    """(statistic, two-sided p-value) of McNemar's test from the discordant counts."""
    if method not in MCNEMAR_METHODS:
        raise ValueError(f"method must be one of {MCNEMAR_METHODS}")
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n = b + c
    if n == 0:
        return 0.0, 1.0
    k = min(b, c)
    if method == "chi2":
        stat = (abs(b - c) - 1) ** 2 / n
        return float(stat), float(sps.chi2.sf(stat, 1))
    exact = min(1.0, 2.0 * float(sps.binom.cdf(k, n, 0.5)))
    if method == "exact":
        return float(k), exact
    # mid-p = 2 * (P(X <= k) - P(X = k) / 2); it is 1 when b == c.
    mid = 2.0 * (float(sps.binom.cdf(k, n, 0.5)) - 0.5 * float(sps.binom.pmf(k, n, 0.5)))
    return float(k), min(1.0, max(0.0, mid))


def mcnemar(y_true, production, candidate, *, method: str = "mid-p") -> McNemar:
    """McNemar's test of paired accuracy (labels compared as strings)."""
    y, p, c = _labels(y_true), _labels(production), _labels(candidate)
    if not (y.shape == p.shape == c.shape):
        raise ValueError("y_true, production and candidate must have the same length")
    pc, cc = p == y, c == y
    b = int(np.sum(pc & ~cc))
    cnt = int(np.sum(~pc & cc))
    stat, pv = mcnemar_from_counts(b, cnt, method=method)
    return McNemar(n=int(y.size), production_correct=int(pc.sum()), candidate_correct=int(cc.sum()),
                   b=b, c=cnt, statistic=stat, p_value=pv, method=method)


# --- paired bootstrap ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapCI:
    metric: str
    n: int
    production: float
    candidate: float
    difference: float  # candidate − production on the full sample
    low: float
    high: float
    confidence: float
    n_boot: int  # resamples that gave a value (AUC needs both classes in a resample)
    seed: int
    higher_is_better: bool

    @property
    def excludes_zero(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high) and (self.low > 0 or self.high < 0)

    @property
    def candidate_better(self) -> bool:
        if not self.excludes_zero:
            return False
        return self.low > 0 if self.higher_is_better else self.high < 0

    def to_dict(self) -> dict:
        out = _to_dict(self)
        out["excludes_zero"] = self.excludes_zero
        out["candidate_better"] = self.candidate_better
        return out


def auc(y_true, score) -> float:
    """ROC AUC by the rank-sum (Mann–Whitney) formula with midranks for ties. NaN with one class."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype="float64")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = sps.rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _auc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AUC of each row of (resampled) label and score matrices (reference implementation, O(n log n) per row)."""
    ranks = sps.rankdata(s, axis=1)
    n_pos = y.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ((ranks * y).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return out


class _ResampledAuc:
    """AUC of many bootstrap resamples of one (labels, scores) sample.

    The distinct scores are ranked once (``np.unique``); a resample is then just counts of positives and
    negatives per distinct score (``np.bincount``), and its AUC a cumulative sum — the Mann–Whitney count
    with ties counted ½ — in O(n) per resample instead of a sort.
    """

    def __init__(self, y: np.ndarray, s: np.ndarray):
        _, self.group = np.unique(s, return_inverse=True)
        self.n_groups = int(self.group.max()) + 1 if s.size else 0
        self.code = (2 * self.group + np.asarray(y, dtype=bool)).astype(np.int64)  # (group, positive?) in one key

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        rows, g = idx.shape[0], self.n_groups
        keys = self.code[idx]
        keys += (np.arange(rows, dtype=np.int64) * (2 * g))[:, None]
        both = np.bincount(keys.ravel(), minlength=rows * g * 2).reshape(rows, g, 2)
        ng, pg = both[:, :, 0].astype("float64"), both[:, :, 1].astype("float64")
        below = np.cumsum(ng, axis=1) - ng
        num = (pg * (below + 0.5 * ng)).sum(axis=1)
        den = pg.sum(axis=1) * ng.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        out[den == 0] = np.nan
        return out


def rmse(y_true, pred) -> float:
    y = np.asarray(y_true, dtype="float64")
    p = np.asarray(pred, dtype="float64")
    return float(np.sqrt(np.mean((y - p) ** 2))) if y.size else float("nan")


BOOTSTRAP_METRICS = ("auc", "rmse", "accuracy", "log_loss", "mae")


def _row_values(metric: str, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-row hits (accuracy: ``pred`` are 0/1 "is this row right" flags — or labels equal to ``y``), or
    per-row losses: log loss of the positive-class score (clipped at 1e-15), absolute error."""
    if metric == "accuracy":
        return (pred == y).astype("float64")
    if metric == "log_loss":
        p = np.clip(pred, 1e-15, 1 - 1e-15)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return np.abs(y - pred)  # mae


def paired_bootstrap(y_true, production, candidate, *, metric: str, n_boot: int = 2000, seed: int = 0,
                     confidence: float = 0.95, chunk: int = 100) -> BootstrapCI:
    """Percentile CI of metric(candidate) − metric(production), resampling requests (pairs kept).

    ``metric`` "auc" / "log_loss": ``y_true`` is 0/1 (positive class = 1) and the model arrays are
    positive-class scores. "rmse" / "mae": numbers. "accuracy": ``y_true`` and the model arrays are label
    codes (equal numbers = the same label).
    """
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"metric must be one of {', '.join(BOOTSTRAP_METRICS)}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    y = np.asarray(y_true, dtype="float64")
    a = np.asarray(production, dtype="float64")
    b = np.asarray(candidate, dtype="float64")
    if not (y.shape == a.shape == b.shape) or y.ndim != 1:
        raise ValueError("y_true, production and candidate must be 1-D and of the same length")
    n = int(y.size)
    higher = metric in ("auc", "accuracy")
    if metric == "auc":
        full_a, full_b = auc(y, a), auc(y, b)
    elif metric == "rmse":
        full_a, full_b = rmse(y, a), rmse(y, b)
    else:  # per-row losses (or hits, for accuracy) whose mean is the metric
        row_a, row_b = _row_values(metric, y, a), _row_values(metric, y, b)
        full_a, full_b = (float(row_a.mean()), float(row_b.mean())) if n else (float("nan"), float("nan"))
    nan = float("nan")
    if n < 2:
        return BootstrapCI(metric, n, full_a, full_b, full_b - full_a, nan, nan, confidence, 0, seed, higher)
    rng = np.random.default_rng(seed)
    if metric == "auc":
        yb = y.astype(bool)
        auc_a, auc_b = _ResampledAuc(yb, a), _ResampledAuc(yb, b)
    elif metric == "rmse":
        err_a, err_b = (y - a) ** 2, (y - b) ** 2
    diffs = []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(size, n))  # the same resampled requests for both models: paired
        if metric == "auc":
            d = auc_b(idx) - auc_a(idx)
        elif metric == "rmse":
            d = np.sqrt(err_b[idx].mean(axis=1)) - np.sqrt(err_a[idx].mean(axis=1))
        else:
            d = row_b[idx].mean(axis=1) - row_a[idx].mean(axis=1)
        diffs.append(d)
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return BootstrapCI(metric, n, full_a, full_b, full_b - full_a, nan, nan, confidence, 0, seed, higher)
    alpha = 1 - confidence
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    return BootstrapCI(metric=metric, n=n, production=full_a, candidate=full_b, difference=full_b - full_a,
                       low=float(low), high=float(high), confidence=confidence, n_boot=int(d.size), seed=seed,
                       higher_is_better=higher)


# --- the whole comparison ------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    status: str  # "insufficient" | "better" | "worse" | "no_difference"
    message: str
    labelled: int
    required: int

    def to_dict(self) -> dict:
        return _to_dict(self)


# Declared primary metrics (the project's promotion policy) → (bootstrap metric, higher is better, label).
PRIMARY_METRICS = {
    "accuracy": ("accuracy", True, "Accuracy"),
    "roc_auc": ("auc", True, "ROC AUC"),
    "log_loss": ("log_loss", False, "Log loss"),
    "rmse": ("rmse", False, "RMSE"),
    "mae": ("mae", False, "MAE"),
}
CLASSIFIER_METRICS = ("accuracy", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae")


@dataclass(frozen=True)
class MetricTest:
    """One declared metric, candidate vs production on the same labelled requests (paired bootstrap).

    ``significantly_worse``: the CI lies entirely on the worse side of ``-margin`` (the non-inferiority
    margin: how much worse the candidate may be before a significant difference fails the gate)."""

    metric: str
    label: str
    n: int
    production: float
    candidate: float
    difference: float  # candidate − production
    low: float
    high: float
    confidence: float
    higher_is_better: bool
    margin: float
    significantly_worse: bool
    significantly_better: bool
    available: bool
    detail: str

    def to_dict(self) -> dict:
        return _to_dict(self)


def metric_test(name: str, ci: BootstrapCI | None, *, margin: float, reason: str = "") -> MetricTest:
    _, higher, label = PRIMARY_METRICS[name]
    nan = float("nan")
    if ci is None or not (math.isfinite(ci.low) and math.isfinite(ci.high)):
        return MetricTest(name, label, ci.n if ci else 0, ci.production if ci else nan, ci.candidate if ci else nan,
                          ci.difference if ci else nan, nan, nan, ci.confidence if ci else 0.95, higher, margin,
                          False, False, False, f"{label}: not computed ({reason or 'no paired sample'})")
    worse = ci.high < -margin if higher else ci.low > margin
    better = ci.low > 0 if higher else ci.high < 0
    word = ("significantly worse" + (f" by more than the margin {margin:g}" if margin else "")) if worse else (
        "significantly better" if better else "no significant difference")
    detail = (f"{label}: candidate {ci.candidate:.4f} vs production {ci.production:.4f}, difference "
              f"{ci.difference:+.4f}, {ci.confidence:.0%} CI [{ci.low:+.4f}, {ci.high:+.4f}] on {ci.n} requests "
              f"with outcomes — {word}")
    return MetricTest(name, label, ci.n, ci.production, ci.candidate, ci.difference, ci.low, ci.high, ci.confidence,
                      higher, margin, worse, better, True, detail)


@dataclass(frozen=True)
class Comparison:
    task: str
    n: int  # requests scored by both
    labelled: int  # of which with a known outcome
    agreement: Agreement | None
    difference: Difference | None  # scores (classifiers) or outputs (regressors)
    mcnemar: McNemar | None
    bootstrap: BootstrapCI | None
    verdict: Verdict
    metrics: tuple[MetricTest, ...] = ()

    def to_dict(self) -> dict:
        return {
            "task": self.task, "n": self.n, "labelled": self.labelled,
            "metrics": [m.to_dict() for m in self.metrics],
            "agreement": self.agreement.to_dict() if self.agreement else None,
            "difference": self.difference.to_dict() if self.difference else None,
            "mcnemar": self.mcnemar.to_dict() if self.mcnemar else None,
            "bootstrap": self.bootstrap.to_dict() if self.bootstrap else None,
            "verdict": self.verdict.to_dict(),
        }


def verdict_for(*, labelled: int, min_labelled: int, mcnemar_result: McNemar | None,
                bootstrap_result: BootstrapCI | None, alpha: float = 0.05,
                metric_tests: tuple[MetricTest, ...] = ()) -> Verdict:
    """The minimum-sample rule, then the significance decision.

    A declared primary metric that is significantly worse makes the verdict "worse", whatever accuracy
    says. Otherwise classifiers decide on McNemar (p < alpha, direction from c vs b); regressors on the
    bootstrap CI of the RMSE difference. Below ``min_labelled`` labelled pairs no verdict is given.
    """
    if labelled < min_labelled:
        return Verdict("insufficient", f"{labelled} of the {min_labelled} requests with known outcomes needed "
                                       "for a verdict", labelled, min_labelled)
    worse = [m for m in metric_tests if m.significantly_worse]
    if worse:
        return Verdict("worse", "; ".join(m.detail for m in worse), labelled, min_labelled)
    if mcnemar_result is not None:
        m = mcnemar_result
        if m.p_value < alpha and m.c != m.b:
            better = m.c > m.b
            word = "better" if better else "worse"
            return Verdict(word, f"Candidate accuracy {m.candidate_accuracy:.3f} vs {m.production_accuracy:.3f} "
                                 f"(McNemar {m.method} p = {m.p_value:.3g}, {m.c} vs {m.b} discordant)",
                           labelled, min_labelled)
        return Verdict("no_difference", f"No significant accuracy difference (McNemar {m.method} "
                                        f"p = {m.p_value:.3g}, {m.c} vs {m.b} discordant)", labelled, min_labelled)
    if bootstrap_result is not None and math.isfinite(bootstrap_result.low):
        bs = bootstrap_result
        ci = f"{bs.metric.upper()} difference {bs.difference:+.4g}, {bs.confidence:.0%} CI [{bs.low:+.4g}, {bs.high:+.4g}]"
        if bs.excludes_zero:
            return Verdict("better" if bs.candidate_better else "worse", ci, labelled, min_labelled)
        return Verdict("no_difference", ci + " includes 0", labelled, min_labelled)
    return Verdict("insufficient", "No paired test could be computed", labelled, min_labelled)


def compare(*, task: str, production_output, candidate_output, production_score=None, candidate_score=None,
            y_true=None, labelled_mask=None, classes=None, positive=None, min_labelled: int = 200,
            alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
            mcnemar_method: str = "mid-p", metrics: tuple[str, ...] = (), margin: float = 0.0) -> Comparison:
    """Compare two models on the same requests.

    ``task``: "binary_classification", "multiclass_classification" or "regression". Scores are the
    positive-class probabilities (binary only). ``y_true`` holds outcomes where ``labelled_mask`` is True
    (other entries are ignored). ``positive``: the positive class (binary AUC), compared as a string.
    ``metrics``: the declared primary metrics (``PRIMARY_METRICS``), each tested by a paired bootstrap at
    confidence 1 − alpha with the non-inferiority ``margin``; every one is reported, and a significantly
    worse one makes the verdict "worse".
    """
    po, co = list(production_output), list(candidate_output)
    if len(po) != len(co):
        raise ValueError("production and candidate outputs have different lengths")
    n = len(po)
    mask = np.zeros(n, dtype=bool) if labelled_mask is None else np.asarray(labelled_mask, dtype=bool)
    if y_true is None:
        mask[:] = False
    labelled = int(mask.sum())
    regression = task == "regression"
    agree = None if regression else agreement(po, co, classes)
    if regression:
        diff = difference_distribution(po, co)
    elif production_score is not None and candidate_score is not None:
        diff = difference_distribution(production_score, candidate_score)
    else:
        diff = None
    mc = bs = None
    if labelled:
        y = np.asarray(list(y_true), dtype=object)[mask]
        if regression:
            bs = paired_bootstrap(np.asarray(y, dtype="float64"), np.asarray(po, dtype="float64")[mask],
                                  np.asarray(co, dtype="float64")[mask], metric="rmse", n_boot=n_boot, seed=seed)
        else:
            mc = mcnemar(y, np.asarray(po, dtype=object)[mask], np.asarray(co, dtype=object)[mask],
                         method=mcnemar_method)
            if production_score is not None and candidate_score is not None and positive is not None:
                yb = (_labels(y) == str(positive)).astype("float64")
                bs = paired_bootstrap(yb, np.asarray(production_score, dtype="float64")[mask],
                                      np.asarray(candidate_score, dtype="float64")[mask], metric="auc",
                                      n_boot=n_boot, seed=seed)
    tests = tuple(_metric_tests(metrics, task=task, mask=mask, y_true=y_true, po=po, co=co,
                                production_score=production_score, candidate_score=candidate_score,
                                positive=positive, margin=margin, alpha=alpha, n_boot=n_boot, seed=seed))
    verdict = verdict_for(labelled=labelled, min_labelled=min_labelled, mcnemar_result=mc, bootstrap_result=bs,
                          alpha=alpha, metric_tests=tests)
    return Comparison(task=task, n=n, labelled=labelled, agreement=agree, difference=diff, mcnemar=mc,
                      bootstrap=bs, verdict=verdict, metrics=tests)


def _metric_tests(metrics, *, task, mask, y_true, po, co, production_score, candidate_score, positive, margin,
                  alpha, n_boot, seed):
    labelled = int(mask.sum())
    for name in metrics:
        if name not in PRIMARY_METRICS:
            raise ValueError(f"Unknown primary metric {name!r} (known: {', '.join(PRIMARY_METRICS)})")
        kind = PRIMARY_METRICS[name][0]
        if not labelled:
            yield metric_test(name, None, margin=margin, reason="no requests with known outcomes yet")
            continue
        y = np.asarray(list(y_true), dtype=object)[mask]
        if (task == "regression") != (name in REGRESSION_METRICS):
            yield metric_test(name, None, margin=margin, reason=f"not a metric of a {task.replace('_', ' ')} model")
            continue
        if kind == "accuracy":
            codes = {v: i for i, v in enumerate(sorted(set(_labels(y)) | set(_labels(po)) | set(_labels(co))))}
            yc, pc, cc = (np.array([codes[v] for v in _labels(arr)], dtype="float64")
                          for arr in (y, np.asarray(po, dtype=object)[mask], np.asarray(co, dtype=object)[mask]))
        elif kind in ("auc", "log_loss"):
            if production_score is None or candidate_score is None or positive is None:
                yield metric_test(name, None, margin=margin, reason="needs positive-class scores (binary models)")
                continue
            yc = (_labels(y) == str(positive)).astype("float64")
            pc = np.asarray(production_score, dtype="float64")[mask]
            cc = np.asarray(candidate_score, dtype="float64")[mask]
        else:
            yc = np.asarray(y, dtype="float64")
            pc = np.asarray(po, dtype="float64")[mask]
            cc = np.asarray(co, dtype="float64")[mask]
        ci = paired_bootstrap(yc, pc, cc, metric=kind, n_boot=n_boot, seed=seed, confidence=1 - alpha)
        yield metric_test(name, ci, margin=margin)

"""Google's ML Test Score rubric (Breck, Cai, Nielsen, Salib, Sculley: "The ML Test Score: A Rubric for
ML Production Readiness and Technical Debt Reduction", IEEE Big Data 2017): 28 tests, 7 in each of
four groups. Pure data — no Django.

Scoring as in the paper: a test earns 0.5 point when it is done manually (with the results documented
and distributed) and 1 point when it is automated and run repeatedly. A group's score is the sum of
its tests; the final ML Test Score is the *minimum* of the four group scores (0 … 7).

``auto`` names the tests that the portal can decide from its own records (see
``apps.readiness.assess``); the others are answered by people.
"""

from dataclasses import dataclass

GROUPS = {
    "data": "Tests for features and data",
    "model": "Tests for model development",
    "infra": "Tests for ML infrastructure",
    "monitor": "Monitoring tests for ML",
}


@dataclass(frozen=True)
class MLTest:
    key: str
    group: str
    name: str
    description: str
    auto: bool = False


TESTS: tuple[MLTest, ...] = (
    # --- Data 1-7
    MLTest("mlts.data.1", "data", "Feature expectations are captured in a schema",
           "The expected range, type and distribution of every input feature is written down and checked "
           "against the data (here: typed feature views, the model's input contract and its reference profile).",
           auto=True),
    MLTest("mlts.data.2", "data", "All features are beneficial",
           "Each feature has been shown to add predictive value (e.g. by ablation), so none is carried "
           "without a reason."),
    MLTest("mlts.data.3", "data", "No feature's cost is too much",
           "The latency, memory, upstream dependencies and maintenance cost of each feature is known and "
           "worth what it adds."),
    MLTest("mlts.data.4", "data", "Features adhere to meta-level requirements",
           "Project-level rules on features (e.g. no personal data, no deprecated sources, approved "
           "sources only) are enforced."),
    MLTest("mlts.data.5", "data", "The data pipeline has appropriate privacy controls",
           "Access to raw and derived data is restricted and audited; sensitive data is handled by policy."),
    MLTest("mlts.data.6", "data", "New features can be added quickly",
           "A proposed feature can go from idea to a trained and evaluated model in days, not months."),
    MLTest("mlts.data.7", "data", "All input feature code is tested",
           "The code that computes features has unit tests; bugs there silently corrupt models."),
    # --- Model 1-7
    MLTest("mlts.model.1", "model", "Model specs are reviewed and submitted",
           "Model code and configuration are version-controlled and peer reviewed before a version ships "
           "(here: a code reference on each served version and a promotion reviewed by someone else).",
           auto=True),
    MLTest("mlts.model.2", "model", "Offline and online metrics correlate",
           "The offline metric on the holdout predicts the metric measured on live traffic "
           "(here: the served version's holdout metric against the realized metric from outcomes).",
           auto=True),
    MLTest("mlts.model.3", "model", "All hyperparameters have been tuned",
           "Hyperparameters were chosen by a search (grid, random, Bayesian), not left at defaults."),
    MLTest("mlts.model.4", "model", "The impact of model staleness is known",
           "How fast quality decays with the model's age is measured, so the retraining cadence is a "
           "decision, not a habit."),
    MLTest("mlts.model.5", "model", "A simpler model is not better",
           "The model is compared regularly against a simple baseline (e.g. a linear model on a few features)."),
    MLTest("mlts.model.6", "model", "Model quality is sufficient on all important data slices",
           "Quality is measured per important slice (country, device, customer segment), not only overall."),
    MLTest("mlts.model.7", "model", "The model has been tested for considerations of inclusion",
           "Fairness across user groups was examined (input data coverage, outcome parity where relevant)."),
    # --- Infrastructure 1-7
    MLTest("mlts.infra.1", "infra", "Training is reproducible",
           "Training twice on the same data gives close models (here: served versions name the exact, "
           "hashed point-in-time training set they were trained on).", auto=True),
    MLTest("mlts.infra.2", "infra", "Model specs are unit tested",
           "The model's code and configuration have unit tests (e.g. a training step on a tiny data set)."),
    MLTest("mlts.infra.3", "infra", "The ML pipeline is integration tested",
           "The whole pipeline — data, training, validation, serving — is exercised end to end "
           "(here: every served version passed the registry's validation: safe load, signature, smoke "
           "prediction and holdout metrics).", auto=True),
    MLTest("mlts.infra.4", "infra", "Model quality is validated before attempting to serve it",
           "A version must pass quality checks against the current model before it serves "
           "(here: portal-computed holdout metrics and an approved promotion request).", auto=True),
    MLTest("mlts.infra.5", "infra", "The model is debuggable",
           "A single example can be stepped through the model to see why it answered what it did."),
    MLTest("mlts.infra.6", "infra", "Models are canaried before serving",
           "A new version first meets production traffic in shadow or as a canary before it takes all "
           "of it (here: a shadow run of each promoted version).", auto=True),
    MLTest("mlts.infra.7", "infra", "Serving models can be rolled back",
           "Going back to the previous version is one quick, practised action (here: a deployment whose "
           "previous production version is still available).", auto=True),
    # --- Monitoring 1-7
    MLTest("mlts.monitor.1", "monitor", "Dependency changes result in notification",
           "Owners are told when an upstream data source or library changes its schema or behaviour."),
    MLTest("mlts.monitor.2", "monitor", "Data invariants hold in training and serving inputs",
           "The schema checks of training data are also applied to live inputs (here: per-window data "
           "quality — missing values, values outside the reference range, unseen categories).", auto=True),
    MLTest("mlts.monitor.3", "monitor", "Training and serving features compute the same values",
           "Training-serving skew is measured (here: the monitoring skew check recomputing logged "
           "feature vectors offline).", auto=True),
    MLTest("mlts.monitor.4", "monitor", "Models are not too stale",
           "The served model is younger than the staleness its quality can bear (here: the production "
           "version's age, and a retraining policy).", auto=True),
    MLTest("mlts.monitor.5", "monitor", "The model is numerically stable",
           "NaNs, infinities and degenerate outputs are detected during training and serving."),
    MLTest("mlts.monitor.6", "monitor", "The model has not experienced dramatic or slow-leak regressions in "
           "training speed, serving latency, throughput or RAM usage",
           "Serving latency and errors are tracked per window (here: the latest window's p95 latency "
           "and error rate against the deployment's history).", auto=True),
    MLTest("mlts.monitor.7", "monitor", "The model has not experienced a regression in prediction quality "
           "on served data",
           "Quality on live traffic is tracked (here: realized performance from outcomes, estimated "
           "performance before they arrive, and performance alerts).", auto=True),
)

BY_KEY = {t.key: t for t in TESTS}
assert len(TESTS) == 28 and all(sum(t.group == g for t in TESTS) == 7 for g in GROUPS)  # noqa: S101

"""Ready model versions for the serving tests, built directly (small sklearn models stored as skops,
optionally with a verified ONNX form), plus helpers to deploy them and call them."""

from __future__ import annotations

import numpy as np

FEATURES = [f"f{i}" for i in range(4)]


def train(kind: str = "logreg", n_features: int = 4, seed: int = 0, n: int = 400):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    model = LogisticRegression(max_iter=500) if kind == "logreg" else HistGradientBoostingClassifier(max_iter=30)
    return model.fit(X, y), X


def make_ready_version(*, project, actor, name: str = "fraud-model", kind: str = "logreg", n_features: int = 4,
                       seed: int = 0, onnx: bool = False, contract: list[dict] | None = None, feature_set=None):
    """A READY ModelVersion (next version number of ``name``) with a skops artifact."""
    import skops.io as sio

    from apps.common.storage import artifact_store
    from apps.registry.models import ModelVersion, RegisteredModel

    estimator, X = train(kind, n_features, seed)
    names = [f"f{i}" for i in range(n_features)]
    rm, _ = RegisteredModel.objects.get_or_create(
        project=project, name=name,
        defaults={"task": "binary_classification", "created_by": actor,
                  "input_contract": contract or [{"name": n, "type": "float"} for n in names],
                  "feature_set": feature_set})
    store = artifact_store()
    stored = store.put_bytes(sio.dumps(estimator), suffix=".skops")
    fields = {"safe_artifact_key": stored.key, "serving_format": "skops", "onnx_verified": False}
    if onnx:
        from skl2onnx import to_onnx

        onx = to_onnx(estimator, X[:1].astype(np.float32), options={id(estimator): {"zipmap": False}})
        o = store.put_bytes(onx.SerializeToString(), suffix=".onnx")
        fields.update(onnx_artifact_key=o.key, serving_format="onnx", onnx_verified=True)
    number = (rm.versions.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    return ModelVersion.objects.create(
        model=rm, version=number, status="ready", artifact_key=stored.key, artifact_sha256=stored.sha256,
        artifact_size=stored.size, artifact_format="skops", classes=[0, 1], created_by=actor, **fields)


def deploy(*, project, actor, version, slug: str = "fraud-api", input_mode: str = "inline", max_batch: int = 100):
    from apps.deployments.services import deployment_api_key_create, deployment_create

    dep = deployment_create(project=project, actor=actor, version=version, slug=slug, owner=actor,
                            input_mode=input_mode, max_batch=max_batch,
                            override_reason="first version live without review (test fixture)")  # no unreviewed first release: an owner's audited override
    _, key = deployment_api_key_create(deployment=dep, actor=actor, name="svc")
    return dep, key


def row(n_features: int = 4, value: float = 0.5) -> dict:
    return {f"f{i}": value * (i + 1) for i in range(n_features)}


# --- a data scientist's mixed-type model: text columns one-hot encoded, numeric columns with spaces ------

MIXED_NUMERIC = ["Monthly Spend ($)", "tenure months"]
MIXED_TEXT = ["country", "plan"]


def churn_frame(n: int = 400, seed: int = 0):
    """(X, y): two text columns, a float and an int column with spaces in their names; text labels."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "country": rng.choice(["DE", "FR", "US", "ES"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "Monthly Spend ($)": rng.normal(50, 12, n).round(2),
        "plan": rng.choice(["basic", "pro", "team"], n),
        "tenure months": rng.integers(0, 72, n),
    })
    logit = (0.08 * (X["Monthly Spend ($)"] - 50) - 0.03 * (X["tenure months"] - 36)
             + X["country"].map({"DE": -0.5, "FR": 0.2, "US": 0.8, "ES": 0.0})
             + X["plan"].map({"basic": 0.6, "pro": -0.2, "team": -0.6}))
    y = pd.Series(np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "churned", "stayed"), name="target")
    return X, y


def churn_pipeline(X, y):
    """ColumnTransformer([OneHotEncoder on the text columns, StandardScaler on the numbers]) → LogisticRegression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), MIXED_TEXT),
                             ("num", StandardScaler(), MIXED_NUMERIC)])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)


def make_ready_mixed_version(*, project, actor, name: str = "churn", onnx: bool = False):
    """A READY version of the mixed-type churn pipeline with its inferred contract (and, with ``onnx``,
    the skl2onnx per-column form the registry would verify)."""
    import skops.io as sio

    from apps.common.storage import artifact_store
    from apps.registry.infer import infer_contract
    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.registry.validation import convert_to_onnx_mixed

    X, y = churn_frame()
    pipe = churn_pipeline(X, y)
    contract, _ = infer_contract(pipe, X)
    rm = RegisteredModel.objects.create(project=project, name=name, task="binary_classification",
                                        created_by=actor, input_contract=contract)
    store = artifact_store()
    stored = store.put_bytes(sio.dumps(pipe), suffix=".skops")
    fields = {"safe_artifact_key": stored.key, "serving_format": "skops", "onnx_verified": False}
    if onnx:
        o = store.put_bytes(convert_to_onnx_mixed(pipe, contract), suffix=".onnx")
        fields.update(onnx_artifact_key=o.key, serving_format="onnx", onnx_verified=True)
    return ModelVersion.objects.create(
        model=rm, version=1, status="ready", artifact_key=stored.key, artifact_sha256=stored.sha256,
        artifact_size=stored.size, artifact_format="skops", classes=[str(c) for c in pipe.classes_],
        created_by=actor, **fields)

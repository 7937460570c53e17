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

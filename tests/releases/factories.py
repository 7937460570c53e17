"""Shadow/promotion test helpers: a weak production and a strong candidate of one registered model,
both READY through the registry's real validation service, a live deployment, and real traffic logged
through the predict endpoint (then drained into the prediction log, as the drainer does)."""

from __future__ import annotations

import json

import numpy as np

import apps.releases.models  # noqa: F401  (registers the models before the test database exists)

MODEL = "fraud-model"


def frame(n: int = 1200, offset: int = 0):
    """Rows [offset, offset + n) of ONE generated problem: training 0-600, holdout 600-1200, traffic after."""
    from tests.registry.factories import make_classification_frame

    X, y, names = make_classification_frame(n=4000, n_features=4, seed=0)
    return X.iloc[offset:offset + n].reset_index(drop=True), y[offset:offset + n], names


def weak_estimator(X, y):
    """Sees only the least useful feature: clearly worse than the strong one."""
    from sklearn.linear_model import LogisticRegression

    Xw = X.copy()
    for col in ("f1", "f2", "f3"):
        Xw[col] = 0.0
    return LogisticRegression(max_iter=500).fit(Xw, y)


def strong_estimator(X, y):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500).fit(X, y)


def versions(project, actor, *, kinds=("weak", "strong")):
    """READY versions of one model, in order (v1, v2, ...), validated by the real registry service."""
    from tests.registry.factories import register_ready_version

    X, y, names = frame()
    train, hold = slice(0, 600), slice(600, 1200)
    out, model = [], None
    for kind in kinds:
        est = (weak_estimator if kind == "weak" else strong_estimator)(X.iloc[train], y[train])
        v = register_ready_version(project, actor, est, X.iloc[hold], y[hold], names, "binary_classification",
                                   model_name=MODEL, model=model)
        model = v.model
        out.append(v)
    return out


def deploy(project, owner, version, slug: str = "fraud-api"):
    from tests.deployments.factories import deploy as serving_deploy

    return serving_deploy(project=project, actor=owner, version=version, slug=slug)


def send_traffic(client, slug: str, key: str, n: int = 300, start: int = 1200, batch: int = 100):
    """POST n rows through the real predict endpoint; returns [(request_id, true_label)] for outcomes."""
    from apps.deployments import logpipe

    X, y, names = frame(n=n, offset=start)
    pairs = []
    for start in range(0, n, batch):
        rows = X.iloc[start:start + batch].to_dict(orient="records")
        resp = client.generic("POST", f"/api/v1/deployments/{slug}/predict", json.dumps({"instances": rows}),
                              content_type="application/json", headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 200, resp.content
        for i, p in enumerate(resp.json()["predictions"]):
            pairs.append((p["request_id"], int(y[start + i])))
    logpipe.flush_own_segment()
    logpipe._writer = None
    logpipe.drain()
    return pairs


def post_outcomes(api_client, slug: str, pairs):
    resp = api_client.post(f"/api/v1/deployments/{slug}/outcomes",
                           data=json.dumps({"outcomes": [{"request_id": r, "label": lab} for r, lab in pairs]}),
                           content_type="application/json")
    assert resp.status_code == 200, resp.content
    return resp.json()


def set_policy(project, owner, **values):
    from apps.releases.services.promotion import promotion_policy_update

    policy = promotion_policy_update(project=project, actor=owner, values=values)
    project.refresh_from_db(fields=["settings"])  # callers keep using their Project instance
    return policy


def accuracy(pairs, preds) -> float:
    return float(np.mean([p == lab for (_, lab), p in zip(pairs, preds, strict=True)]))

"""Canary: a sticky share of live requests answered and logged under the candidate's version."""

import json
import uuid

import pytest

from apps.common.errors import InvalidInput, PermissionDenied
from apps.deployments import logpipe
from apps.deployments.models import PredictionLog
from apps.releases.services import rollout

from .factories import deploy, frame, versions

pytestmark = pytest.mark.django_db


def _call(client, slug, key, rid=None):
    X, _, _ = frame(n=1, offset=3000)
    headers = {"Authorization": f"Bearer {key}"}
    if rid:
        headers["X-Request-ID"] = rid
    resp = client.generic("POST", f"/api/v1/deployments/{slug}/predict",
                          json.dumps({"instances": X.to_dict(orient="records")}), content_type="application/json",
                          headers=headers)
    assert resp.status_code == 200, resp.content
    return resp.json()["model_version"]


def test_canary_splits_sticky_logs_under_candidate_and_stops(project, users, client):
    weak, strong = versions(project, users["data_scientist"])
    dep, key = deploy(project, users["owner"], weak)
    with pytest.raises(PermissionDenied):
        rollout.canary_set(deployment=dep, actor=users["reviewer"], candidate=strong, percent=10)
    with pytest.raises(InvalidInput):
        rollout.canary_set(deployment=dep, actor=users["owner"], candidate=strong, percent=80)
    rollout.canary_set(deployment=dep, actor=users["owner"], candidate=strong, percent=30)
    seen = [_call(client, dep.slug, key)["id"] for _ in range(120)]
    share = seen.count(strong.pk) / len(seen)
    assert set(seen) == {weak.pk, strong.pk} and 0.12 < share < 0.5, share
    # sticky: a request id always gets the same version
    for rid in [str(uuid.UUID(int=i)) for i in (1, 2, 3, 4, 5, 6)]:
        assert len({_call(client, dep.slug, key, rid)["id"] for _ in range(5)}) == 1
    logpipe.flush_own_segment()
    logpipe._writer = None
    logpipe.drain()
    logged = set(PredictionLog.objects.filter(deployment=dep).values_list("version_id", flat=True))
    assert logged == {weak.pk, strong.pk}
    assert dep.events.filter(kind="canary").exists()
    rollout.canary_stop(deployment=dep, actor=users["owner"])
    assert {_call(client, dep.slug, key)["id"] for _ in range(30)} == {weak.pk}


def test_canary_api_and_page(project, users, api_client, logged_in_client):
    weak, strong = versions(project, users["data_scientist"])
    dep, _ = deploy(project, users["owner"], weak)
    url = f"/api/v1/projects/fraud/deployments/{dep.slug}/canary"
    body = json.dumps({"candidate_id": strong.pk, "percent": 10})
    assert api_client(users["reviewer"]).put(url, data=body, content_type="application/json").status_code == 403
    ok = api_client(users["owner"]).put(url, data=body, content_type="application/json")
    assert ok.status_code == 200 and ok.json()["percent"] == 10
    page = logged_in_client(users["owner"]).get(f"/projects/fraud/deployments/{dep.slug}/releases")
    assert page.status_code == 200 and b"are answered and logged by" in page.content
    assert api_client(users["owner"]).delete(url).status_code == 204
    assert api_client(users["owner"]).delete(url).status_code == 409
    resp = logged_in_client(users["owner"]).post(f"/projects/fraud/deployments/{dep.slug}/canary",
                                                 {"candidate": strong.pk, "percent": 5, "sticky_by": "request"})
    assert resp.status_code == 302 and dep.events.filter(kind="canary").count() == 3


def test_canary_by_entity_answers_each_entity_of_a_batch_by_its_own_side_and_logs_the_version_per_row(
        project, users, client):
    """{"entities": ["c0", "c2"]} and ["c2", "c0"] give each entity the same version: the batch is split."""
    from apps.features.services import feature_view_materialize
    from tests.deployments.factories import deploy as deploy_version
    from tests.deployments.factories import make_ready_version
    from tests.features.factories import make_feature_store

    fs = make_feature_store(project=project, actor=users["owner"], online=True, n_entities=20)
    feature_view_materialize(view=fs.view, as_of=fs.end)
    contract = [{"name": "amount", "type": "float"}, {"name": "n_tx", "type": "int"}]
    v1, v2 = (make_ready_version(project=project, actor=users["owner"], n_features=2, contract=contract,
                                 feature_set=fs.feature_set, seed=s) for s in (1, 2))
    dep, key = deploy_version(project=project, actor=users["owner"], version=v1, slug="by-key", input_mode="entity")
    rollout.canary_set(deployment=dep, actor=users["owner"], candidate=v2, percent=50, sticky_by="entity")
    entities = [f"c{i}" for i in range(20)]

    def versions_of(batch):
        resp = client.post("/api/v1/deployments/by-key/predict", json.dumps({"entities": batch}),
                           content_type="application/json", headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 200, resp.content
        rows = resp.json()["predictions"]
        return {e: r.get("model_version", resp.json()["model_version"])["id"] for e, r in zip(batch, rows,
                                                                                                strict=True)}, rows

    forward, rows = versions_of(entities)
    backward, _ = versions_of(list(reversed(entities)))
    assert forward == backward and set(forward.values()) == {v1.pk, v2.pk}, forward
    for e in entities:  # alone, each entity gets the version it got inside the batch
        assert versions_of([e])[0] == {e: forward[e]}
    logpipe.flush_own_segment()
    logpipe._writer = None
    logpipe.drain()
    first_ids = {r["request_id"]: e for r, e in zip(rows, entities, strict=True)}
    logged = {str(x.request_id): x for x in PredictionLog.objects.filter(deployment=dep)}
    for rid, e in first_ids.items():
        assert logged[rid].version_id == forward[e] and logged[rid].entity_key == e

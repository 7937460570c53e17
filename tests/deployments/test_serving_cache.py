"""The serving process's state and model cache: the host snapshot file, the least-recently-used model
cache bounded by measured bytes, pool allow-lists, the readiness probe, and observability failures
that never fail a request."""

import json
import os

import pytest

from apps.deployments import metrics, serving, serving_state

from .factories import deploy, make_ready_version, row
from .test_serving import post


def _url(slug: str) -> str:
    return f"/api/v1/deployments/{slug}/predict"


@pytest.fixture
def three(project, users):
    """Three deployments, each with its own model version."""
    out = []
    for i in range(3):
        v = make_ready_version(project=project, actor=users["owner"], name=f"m{i}", seed=i)
        dep, key = deploy(project=project, actor=users["owner"], version=v, slug=f"dep-{i}")
        out.append((dep, key, v))
    return out


@pytest.mark.django_db
def test_snapshot_file_holds_every_deployment_and_only_active_key_hashes(client, three, settings, users):
    from apps.deployments.models import DeploymentApiKey
    from apps.deployments.services import deployment_api_key_revoke

    (dep0, key0, v0), (dep1, key1, _), _ = three
    deployment_api_key_revoke(key=DeploymentApiKey.objects.get(deployment=dep1), actor=users["owner"])
    assert post(client, {"instances": [row()]}, key0, url=_url("dep-0")).status_code == 200
    path = settings.SERVING_STATE_SNAPSHOT
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    snap = serving_state.snapshot_read(path)
    assert {d["slug"] for d in snap["deployments"]} == {"dep-0", "dep-1", "dep-2"}
    assert set(snap["keys"].values()) == {dep0.pk, three[2][0].pk}  # the revoked key is not there
    text = path.read_text()
    assert key0 not in text and key1 not in text and serving.key_hash(key0) in text  # hashes, never keys
    assert snap["versions"][str(v0.pk)]["safe_artifact_key"] == v0.safe_artifact_key


@pytest.mark.django_db
def test_a_process_without_database_access_serves_from_the_snapshot_file(client, three, settings):
    """A fresh cache built from the file alone (no database read) answers, refuses unknown keys and
    loads models from the versions' recorded artifact locations."""
    (dep0, key0, v0), *_ = three
    assert post(client, {"instances": [row()]}, key0, url=_url("dep-0")).status_code == 200
    snap = serving_state.snapshot_read(settings.SERVING_STATE_SNAPSHOT)
    cache = serving.ServingCache()
    st = cache._install(snap, source="snapshot")
    assert st.deployments["dep-0"].version_id == v0.pk and cache.key_owner(key0, st) == dep0.pk
    assert cache.key_owner("sdk_unknown", st) is None
    from django.db import connection

    with connection.execute_wrapper(_no_queries):
        predictor = cache.load(v0.pk, reason="preload")
    labels, probs = predictor.predict([[0.1, 0.2, 0.3, 0.4]])
    assert probs.shape == (1, 2)


def _no_queries(execute, sql, params, many, context):
    raise AssertionError(f"no database query expected, got {sql}")


@pytest.mark.django_db
def test_model_cache_evicts_the_least_recently_used_within_the_byte_budget(client, three, settings):
    keys = {f"dep-{i}": k for i, (_, k, _) in enumerate(three)}
    vids = [v.pk for _, _, v in three]
    assert post(client, {"instances": [row()]}, keys["dep-0"], url=_url("dep-0")).status_code == 200
    one = serving.CACHE.model_bytes
    assert one > 100  # measured, not a count
    settings.SERVING_MODEL_CACHE_BYTES = int(one * 2.5)  # room for two of these models
    evictions = metrics.MODEL_EVICTIONS._value.get()
    for slug in ("dep-1", "dep-0", "dep-2"):  # dep-0 used after dep-1: dep-1 is the least recently used
        assert post(client, {"instances": [row()]}, keys[slug], url=_url(slug)).status_code == 200
    assert list(serving.CACHE._predictors) == [vids[0], vids[2]]
    assert serving.CACHE.model_bytes <= settings.SERVING_MODEL_CACHE_BYTES
    assert metrics.MODEL_EVICTIONS._value.get() == evictions + 1
    misses = metrics.MODEL_LOADS.labels("miss")._value.get()
    assert post(client, {"instances": [row()]}, keys["dep-0"], url=_url("dep-0")).status_code == 200
    assert metrics.MODEL_LOADS.labels("miss")._value.get() == misses  # a hit: no load


@pytest.mark.django_db
def test_pool_allow_list_serves_only_its_deployments(client, three, settings):
    settings.SERVING_DEPLOYMENTS = ["dep-0", "dep-2*"]
    assert post(client, {"instances": [row()]}, three[0][1], url=_url("dep-0")).status_code == 200
    resp = post(client, {"instances": [row()]}, three[1][1], url=_url("dep-1"))
    assert resp.status_code == 404 and "not served by this pool" in resp.json()["detail"]
    assert post(client, {"instances": [row()]}, three[2][1], url=_url("dep-2")).status_code == 200
    resp = post(client, {"instances": [row()]}, three[1][1], url=_url("nope"))
    assert resp.status_code == 404 and resp.json()["detail"] == "No deployment named 'nope'"


@pytest.mark.django_db
def test_warm_up_preloads_every_live_model_and_the_state(three):
    serving.warm_up_models()
    assert set(serving.CACHE._predictors) == {v.pk for _, _, v in three}
    assert serving.CACHE._state.source == "database" and len(serving.CACHE._state.deployments) == 3


@pytest.mark.django_db
def test_healthz_runs_a_probe_prediction_and_fails_when_the_spool_cannot_be_written(client, three, settings,
                                                                                   tmp_path):
    from apps.deployments import logpipe

    resp = client.get("/healthz")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["status"] == "ok" and body["state"]["deployments"] == 3 and body["state"]["source"] == "database"
    assert logpipe.drain() == 1 and not _logged_rows()  # the probe's spool record is skipped by the drainer
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings.SERVING_SPOOL_DIR = blocker / "spool"  # cannot be created: every prediction would fail
    logpipe.flush_own_segment()
    logpipe._writer = None
    resp = client.get("/healthz")
    assert resp.status_code == 503 and "probe prediction failed (500)" in resp.json()["detail"]


def _logged_rows() -> int:
    from apps.deployments.models import PredictionLog

    return PredictionLog.objects.count()


def test_multiproc_dir_is_created_at_start_or_start_up_fails_loudly(tmp_path, monkeypatch):
    target = tmp_path / "prom" / "nested"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(target))
    (tmp_path / "prom").mkdir()
    (tmp_path / "prom" / "stale.db").write_text("")
    assert metrics.ensure_multiproc_dir(wipe=True) == str(target) and target.is_dir()
    (target / "counter_1.db").write_text("")
    metrics.ensure_multiproc_dir(wipe=True)
    assert not os.listdir(target)  # wiped at start
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(blocker / "prom"))
    with pytest.raises(RuntimeError, match="cannot be created or written"):
        metrics.ensure_multiproc_dir()


def test_snapshot_write_never_replaces_a_newer_generation(tmp_path):
    path = tmp_path / "state.json"
    base = {"format": serving_state.SNAPSHOT_FORMAT, "deployments": [], "keys": {}, "versions": {}}
    assert serving_state.snapshot_write(path, {**base, "generation": 5})
    assert not serving_state.snapshot_write(path, {**base, "generation": 4})
    assert serving_state.snapshot_read(path)["generation"] == 5
    path.write_text(json.dumps({"format": 999}))
    assert serving_state.snapshot_read(path) is None

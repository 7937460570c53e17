"""Serving from cold workers while PostgreSQL is down, and many models per worker (the real stack:
gunicorn, its drainer process, a private PostgreSQL cluster that the test stops and starts)."""

import http.client
import json
import time

import pytest

from .stack import (
    Gunicorn,
    ThrowawayPostgres,
    base_env,
    count_logged,
    http_get,
    metric_values,
    predict_once,
    prepare_database,
    run_django,
    wait_http,
)

PAYLOAD = json.dumps({"instances": [{f"f{i}": 0.1 * i for i in range(4)}]}).encode()
BAD_PAYLOAD = json.dumps({"instances": [{"f0": "1.5", "f1": 0, "f2": 0, "f3": 0}]}).encode()


def _post(port: int, slug: str, key: str, payload: bytes = PAYLOAD):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        return predict_once(conn, slug, key, payload)
    finally:
        conn.close()


def _needs_postgres():
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("the outage test stops a private PostgreSQL cluster (run with DATABASE_URL=postgres://…)")


def test_cold_workers_answer_every_deployment_during_a_database_outage(tmp_path):
    _needs_postgres()
    pg = ThrowawayPostgres()
    server = None
    try:
        info = prepare_database(pg.url, tmp_path, deployments=10)
        deps = info["extra"]
        server = Gunicorn(base_env(pg.url, tmp_path, DATABASE_CONNECT_TIMEOUT=2), workers=2,
                          log=tmp_path / "gunicorn.log")
        port = server.port
        # Revoke each deployment's spare key while the database is up; it is refused within a second.
        ids = [d["spare_key_id"] for d in deps]
        run_django(pg.url, tmp_path, (
            "from django.contrib.auth import get_user_model\n"
            "from apps.deployments.models import DeploymentApiKey\n"
            "from apps.deployments.services import deployment_api_key_revoke\n"
            "owner = get_user_model().objects.get(username='owner')\n"
            f"for k in DeploymentApiKey.objects.filter(pk__in={ids!r}):\n"
            "    deployment_api_key_revoke(key=k, actor=owner)\n"))
        time.sleep(2.5)  # > SERVING_STATE_TTL and the drainer's round: the snapshot on disk has the revocation
        assert _post(port, deps[0]["slug"], deps[0]["spare_key"]).status == 401

        pg.stop("fast")
        new_workers = server.restart_workers()
        assert len(new_workers) == 2
        wait_http(port)  # the probe passes with no database: state from the snapshot file
        status, body = http_get(port, "/healthz")
        assert status == 200 and json.loads(body)["state"]["source"] == "snapshot", body

        answered: set[str] = set()
        for _ in range(3):  # three rounds: each new connection may land on either cold worker
            for d in deps:
                r = _post(port, d["slug"], d["key"])
                assert r.status == 200, (d["slug"], r.status, r.body, r.error)
                assert r.body["model_version"]["id"] == d["version"]
                answered |= {p["request_id"] for p in r.body["predictions"]}
                refused = _post(port, d["slug"], d["spare_key"])
                assert refused.status == 401, (d["slug"], refused.status, refused.body)
        # An error during the outage is counted for its deployment (not as deployment "-").
        bad = _post(port, deps[3]["slug"], deps[3]["key"], BAD_PAYLOAD)
        assert bad.status == 422
        errors = metric_values(port, "slipway_predict_errors_total")
        assert any(f'deployment="{deps[3]["slug"]}"' in labels and 'reason="invalid_input"' in labels
                   for labels in errors), errors
        assert sum(metric_values(port, "slipway_serving_state_outage").values()) >= 1

        pg.start()
        expected = {d["deployment"] for d in deps}
        deadline = time.monotonic() + 90
        logged: set[str] = set()
        while time.monotonic() < deadline:
            try:
                logged = count_logged(pg.url, tmp_path, sorted(expected))
            except RuntimeError:
                logged = set()
            if answered <= logged:
                break
            time.sleep(1)
        assert logged == answered, f"{len(answered - logged)} answered rows missing, {len(logged - answered)} extra"
        out = run_django(pg.url, tmp_path, (
            "from django.db.models import Sum\n"
            "from apps.deployments.models import PredictionMinuteStat\n"
            f"print('ERR', PredictionMinuteStat.objects.filter(deployment_id={deps[3]['deployment']})"
            ".aggregate(e=Sum('errors'))['e'])\n"))
        assert out.split("ERR")[-1].strip() == "1", out
        # Back on the database: the state source switches back within a second or two.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # each worker re-reads the state on its next request
            states = {json.loads(http_get(port, "/healthz")[1])["state"]["source"] for _ in range(6)}
            if states == {"database"} and sum(metric_values(port, "slipway_serving_state_outage").values()) == 0:
                break
            time.sleep(0.5)
        assert states == {"database"}
        assert sum(metric_values(port, "slipway_serving_state_outage").values()) == 0
    finally:
        if server is not None:
            server.stop()
        pg.destroy()


def test_sixty_deployments_round_robin_on_one_worker_never_reload_a_model(tmp_path):
    """Every live model is preloaded within the byte budget; round-robin over 60 deployments then causes
    no load and no eviction (counted in /metrics)."""
    from .test_load import _db_url

    url, drop = _db_url(tmp_path)
    server = None
    try:
        info = prepare_database(url, tmp_path, deployments=60)
        deps = info["extra"]
        server = Gunicorn(base_env(url, tmp_path), workers=1, log=tmp_path / "gunicorn.log")
        port = server.port
        loads = metric_values(port, "slipway_serving_model_loads_total")
        assert loads.get('reason="preload"', 0) >= 61, loads  # 60 + the stack's first deployment
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(3):
            for d in deps:
                r = predict_once(conn, d["slug"], d["key"], PAYLOAD)
                assert r.status == 200, (d["slug"], r.status, r.body)
                assert r.body["model_version"]["id"] == d["version"]
        conn.close()
        after = metric_values(port, "slipway_serving_model_loads_total")
        assert after.get('reason="miss"', 0) == 0, after
        assert sum(metric_values(port, "slipway_serving_model_evictions_total").values()) == 0
        assert sum(metric_values(port, "slipway_serving_models_cached").values()) == 61
    finally:
        if server is not None:
            server.stop()
        drop()

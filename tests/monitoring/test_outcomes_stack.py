"""Outcomes posted the moment the predictions come back, on the production set-up: gunicorn with two
workers and its prediction-log drainer (slowed down so the spool lags). Nothing is "unknown": what is
not logged yet is held pending and matched by the next monitoring tick; every label then counts once, in
the count window (request order) that holds its prediction."""

import http.client
import json
import subprocess
import threading
import time

import pytest

from tests.deployments.stack import PY, ROOT, Gunicorn, base_env, prepare_database

pytestmark = pytest.mark.django_db

TOKEN = r"""
import django
django.setup()
from django.contrib.auth import get_user_model
from apps.projects.services import api_token_create
print("TOKEN" + api_token_create(user=get_user_model().objects.get(username="owner"), name="labels")[1])
"""

TICK = r"""
import django, json
django.setup()
from apps.deployments.models import Deployment
from apps.monitoring import services
from apps.monitoring.models import MonitoringWindow, Outcome, PendingOutcome
dep = Deployment.objects.get(slug="load-api")
ms = services.monitor_settings_for(dep)
ms.window_kind, ms.window_count = "count", 100
ms.save()
services.monitoring_tick()
windows = list(MonitoringWindow.objects.filter(deployment=dep).order_by("start", "first_request_id")
               .values_list("n_rows", "n_labelled", "partial"))
print("TICK" + json.dumps({"outcomes": Outcome.objects.count(), "pending": PendingOutcome.objects.count(),
                           "windows": windows}))
"""


def _tick(env) -> dict:
    out = subprocess.run([PY, "-c", TICK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads([x for x in out.stdout.splitlines() if x.startswith("TICK")][-1][4:])


def _token(env) -> str:
    out = subprocess.run([PY, "-c", TOKEN], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return [x for x in out.stdout.splitlines() if x.startswith("TOKEN")][-1][5:]


def _client(port, key, ids, n, lock):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(n):
        conn.request("POST", "/api/v1/deployments/load-api/predict",
                     body=json.dumps({"instances": [{f"f{j}": 0.1 * (i + j) for j in range(4)}]}),
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200, body
        with lock:
            ids.extend((p["request_id"], p["prediction"]) for p in body["predictions"])
    conn.close()


def test_outcomes_posted_immediately_under_two_workers_are_all_matched(tmp_path):
    url = f"sqlite:///{tmp_path / 'stack.sqlite3'}"
    info = prepare_database(url, tmp_path)
    env = base_env(url, tmp_path, SERVING_DRAIN_INTERVAL=3, MONITORING_LOG_SETTLE_SECONDS=1)
    token = _token(env)  # a person's token posts the labels; the service key only predicts
    server = Gunicorn(env, workers=2, log=tmp_path / "gunicorn.log")
    try:
        answered, lock = [], threading.Lock()
        threads = [threading.Thread(target=_client, args=(server.port, info["key"], answered, 150, lock))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(answered) == 300
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("POST", "/api/v1/deployments/load-api/outcomes",
                     body=json.dumps({"outcomes": [{"request_id": rid, "label": pred} for rid, pred in answered]}),
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status in (200, 202), body
        assert body["unknown_request_ids"] == [] and body["created"] + body["pending"] == 300
        state = {}
        for _ in range(30):  # the drainer catches up; each tick matches what reached the log
            state = _tick(env)
            if state["pending"] == 0 and sum(w[0] for w in state["windows"]) == 300:
                break
            time.sleep(1)
        assert state["outcomes"] == 300 and state["pending"] == 0, state
        assert [w[0] for w in state["windows"] if not w[2]] == [100, 100, 100]
        assert sum(w[1] for w in state["windows"]) == 300  # each label once, in its row's window
    finally:
        server.stop()

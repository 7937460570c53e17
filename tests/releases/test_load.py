"""Rollback under load on the real serving stack (gunicorn, several workers; the serving helper's tooling):
no request fails, and every process answers with the previous version right after the rollback."""

import http.client
import json
import subprocess
import time

import pytest

from tests.deployments.stack import PY, ROOT, Gunicorn, LoadClient, base_env, predict_once, prepare_database
from tests.deployments.test_load import _db_url

PAYLOAD = json.dumps({"instances": [{f"f{i}": 0.1 * i for i in range(4)}]}).encode()

SWITCH = """
import django; django.setup()
from django.contrib.auth import get_user_model
from apps.deployments.models import Deployment
from apps.deployments import services
from apps.releases.services import rollout
from apps.registry.models import ModelVersion
owner = get_user_model().objects.get(username="owner")
d = Deployment.objects.get(pk={dep})
if "{action}" == "promote":
    services.deployment_version_set(deployment=d, actor=owner, version=ModelVersion.objects.get(pk={v2}),
                                    kind="promote", action="promotion.review", reason="set-up: promote v2")
else:
    rollout.deployment_rollback(deployment=d, actor=owner, reason="rollback under load")
print(Deployment.objects.get(pk={dep}).production_version_id)
"""


def _run(stack, action: str) -> int:
    code = SWITCH.format(dep=stack["deployment"], v2=stack["versions"][1], action=action)
    out = subprocess.run([PY, "-c", code], cwd=ROOT, env=base_env(stack["url"], stack["dir"]), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return int(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("promo-stack")
    url, drop = _db_url(tmp)
    info = prepare_database(url, tmp)
    stack = {"url": url, "dir": tmp, **info}
    _run(stack, "promote")
    server = Gunicorn(base_env(url, tmp), workers=3, log=tmp / "gunicorn.log")
    yield {**stack, "server": server}
    server.stop()
    drop()


def test_rollback_under_load_restores_previous_version_and_no_request_fails(stack):
    v1, v2 = stack["versions"][:2]
    client = LoadClient(stack["server"].port, stack["slug"], stack["key"], PAYLOAD, connections=16).start()
    time.sleep(2)
    assert _run(stack, "rollback") == v1
    time.sleep(3)
    stats = client.stop()
    assert set(stats.statuses()) == {200}, stats.statuses()
    versions = [r.body["model_version"]["id"] for r in stats.ok]
    assert v2 in versions and v1 in versions and set(versions) <= {v1, v2}
    # every serving process has switched: fresh connections (any worker) all answer with v1
    after = []
    for _ in range(30):
        conn = http.client.HTTPConnection("127.0.0.1", stack["server"].port, timeout=10)
        after.append(predict_once(conn, stack["slug"], stack["key"], PAYLOAD))
        conn.close()
    assert {r.status for r in after} == {200}
    assert {r.body["model_version"]["id"] for r in after} == {v1}

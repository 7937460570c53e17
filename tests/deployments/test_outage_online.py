"""Entity-key deployments (features from the online store in PostgreSQL) during a database outage, on the
real stack: gunicorn, its drainer, a private PostgreSQL cluster that the test really stops."""

import http.client
import json
import time

import pytest

from .stack import (
    Gunicorn,
    ThrowawayPostgres,
    base_env,
    count_logged,
    metric_values,
    prepare_database,
    run_django,
    wait_http,
)
from .test_outage import _needs_postgres

ENTITY_SETUP = """
import json
from django.contrib.auth import get_user_model
from apps.projects.models import Project
from apps.features.services import feature_view_materialize
from tests.features.factories import make_feature_store
from tests.deployments.factories import make_ready_version, deploy
owner = get_user_model().objects.get(username='owner')
project = Project.objects.get(slug='serving')
fs = make_feature_store(project=project, actor=owner, online=True, n_entities=ENTITIES)
feature_view_materialize(view=fs.view, as_of=fs.end)
contract = [{"name": "amount", "type": "float"}, {"name": "n_tx", "type": "int"}]
v = make_ready_version(project=project, actor=owner, name="by-key-model", n_features=2, contract=contract,
                       feature_set=fs.feature_set)
dep, key = deploy(project=project, actor=owner, version=v, slug="by-key", input_mode="entity")
print("ENTITY" + json.dumps({"slug": dep.slug, "key": key, "deployment": dep.pk, "view": fs.view.pk}))
"""


def _setup(pg, tmp_path, entities: int) -> dict:
    prepare_database(pg.url, tmp_path)
    out = run_django(pg.url, tmp_path, ENTITY_SETUP.replace("ENTITIES", str(entities)))
    return json.loads([x for x in out.splitlines() if x.startswith("ENTITY")][-1][6:])


def _ask(port: int, dep: dict, entities: list[str]):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", f"/api/v1/deployments/{dep['slug']}/predict", body=json.dumps({"entities": entities}),
                     headers={"Authorization": f"Bearer {dep['key']}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), resp.getheader("Retry-After")
    finally:
        conn.close()


def _wait_logged(pg, tmp_path, dep, answered: set[str]) -> set[str]:
    deadline = time.monotonic() + 90
    logged: set[str] = set()
    while time.monotonic() < deadline:
        try:
            logged = count_logged(pg.url, tmp_path, dep["deployment"])
        except RuntimeError:
            logged = set()
        if answered <= logged:
            break
        time.sleep(1)
    return logged


def _answers(body) -> list:
    return [(p["prediction"], p["probabilities"]) for p in body["predictions"]]


def test_cold_workers_answer_entity_keys_of_a_small_feature_set_during_a_database_outage(tmp_path):
    """A view of 20 entities is held whole: the drainer keeps it in the host's file, workers restarted
    while PostgreSQL is down preload it and answer every entity exactly as before; an unknown entity gets
    the store's answer (422), not a 503."""
    _needs_postgres()
    pg = ThrowawayPostgres()
    server = None
    try:
        dep = _setup(pg, tmp_path, entities=20)
        server = Gunicorn(base_env(pg.url, tmp_path, DATABASE_CONNECT_TIMEOUT=2), workers=2,
                          log=tmp_path / "gunicorn.log")
        port = server.port
        entities = [f"c{i}" for i in range(20)]
        status, before, _ = _ask(port, dep, entities)
        assert status == 200, before
        online_file = tmp_path / "serving-online.json"
        deadline = time.monotonic() + 30  # the drainer writes the host's file of small views
        while time.monotonic() < deadline and not online_file.exists():
            time.sleep(0.3)
        views = json.loads(online_file.read_text())["views"]
        assert len(views[str(dep["view"])]["rows"]) == 20

        pg.stop("fast")
        assert len(server.restart_workers()) == 2
        wait_http(port)
        answered = {p["request_id"] for p in before["predictions"]}
        for _ in range(4):  # new connections land on either cold worker
            status, body, _ = _ask(port, dep, entities)
            assert status == 200, body
            assert _answers(body) == _answers(before)  # the values the store held
            answered |= {p["request_id"] for p in body["predictions"]}
            status, body, _ = _ask(port, dep, ["nobody"])
            assert status == 422 and "no value of 'amount' for entity 'nobody'" in body["detail"], body

        pg.start()
        assert _wait_logged(pg, tmp_path, dep, answered) == answered
    finally:
        if server is not None:
            server.stop()
        pg.destroy()


def test_entities_seen_recently_are_answered_during_an_outage_and_the_rest_get_503_with_retry_after(tmp_path):
    """A view larger than SERVING_ONLINE_PRELOAD_ROWS is not held whole: the values a worker read before the
    outage are answered from its copy; an entity it never read gets 503 + Retry-After, counted for the
    deployment in /metrics and in its error statistics."""
    _needs_postgres()
    pg = ThrowawayPostgres()
    server = None
    try:
        dep = _setup(pg, tmp_path, entities=20)
        server = Gunicorn(base_env(pg.url, tmp_path, DATABASE_CONNECT_TIMEOUT=2, SERVING_ONLINE_PRELOAD_ROWS=5),
                          workers=1, log=tmp_path / "gunicorn.log")
        port = server.port
        seen = ["c0", "c1", "c2"]
        status, before, _ = _ask(port, dep, seen)
        assert status == 200, before

        pg.stop("fast")
        answered = {p["request_id"] for p in before["predictions"]}
        for _ in range(3):
            status, body, _ = _ask(port, dep, seen)
            assert status == 200, body
            assert _answers(body) == _answers(before)
            answered |= {p["request_id"] for p in body["predictions"]}
        status, body, retry = _ask(port, dep, ["c1", "c7"])
        assert status == 503 and retry == "5", (status, body, retry)
        assert "'c7'" in body["detail"], body
        errors = metric_values(port, "slipway_predict_errors_total")
        assert any('deployment="by-key"' in labels and 'reason="online_unavailable"' in labels
                   for labels in errors), errors

        pg.start()
        assert _wait_logged(pg, tmp_path, dep, answered) == answered
        deadline = time.monotonic() + 30
        out = ""
        while time.monotonic() < deadline:
            out = run_django(pg.url, tmp_path, (
                "from django.db.models import Sum\n"
                "from apps.deployments.models import PredictionMinuteStat\n"
                f"print('ERR', PredictionMinuteStat.objects.filter(deployment_id={dep['deployment']})"
                ".aggregate(e=Sum('errors'))['e'])\n"))
            if out.split("ERR")[-1].strip() == "1":
                break
            time.sleep(1)
        assert out.split("ERR")[-1].strip() == "1", out
        status, body, _ = _ask(port, dep, ["c7"])  # the database is back: read from the store again
        assert status == 200, body
    finally:
        if server is not None:
            server.stop()
        pg.destroy()


@pytest.mark.parametrize("budget", [10_000])
def test_online_copy_is_bounded_in_bytes_and_dropped_when_a_view_is_rematerialized(settings, budget):
    from datetime import UTC, datetime

    from apps.deployments.online_cache import NotCached, OnlineCache

    settings.SERVING_ONLINE_CACHE_BYTES = budget
    cache = OnlineCache()
    t = datetime(2026, 1, 1, tzinfo=UTC)
    store = {(1, f"k{i}"): ({"amount": float(i), "pad": "x" * 200}, t) for i in range(200)}

    def read(view_ids, keys):
        return {p: store[p] for p in ((v, k) for v in view_ids for k in keys) if p in store}, set()

    for i in range(200):
        cache.read_through(read, [1], [f"k{i}"], store_down=False)
    assert cache.bytes <= budget and 0 < cache.stats()["entries"] < 200
    assert cache.read_through(read, [1], ["k199"], store_down=True)[0][(1, "k199")][0]["amount"] == 199.0
    with pytest.raises(NotCached):  # least recently used: gone
        cache.read_through(read, [1], ["k0"], store_down=True)

    def down(view_ids, keys):
        raise ConnectionError("store unreachable")

    assert (1, "k199") in cache.read_through(down, [1], ["k199"], store_down=False)[0]  # falls back
    cache.note_stamps({1: "t1"})
    assert cache.note_stamps({1: "t2"}) == [1]  # re-materialized: the copy is dropped
    with pytest.raises(NotCached):
        cache.read_through(down, [1], ["k199"], store_down=False)
    cache.preload(2, "t1", [["a", {"amount": 1.0}, 0]])
    assert cache.lookup([2], ["a", "unknown"]) == {(2, "a"): ({"amount": 1.0}, datetime(1970, 1, 1, tzinfo=UTC))}


def test_online_copy_answers_a_view_the_store_reported_stale_as_stale(settings):
    from datetime import UTC, datetime

    from apps.deployments.online_cache import OnlineCache

    settings.SERVING_ONLINE_CACHE_BYTES = 1_000_000
    cache = OnlineCache()
    t = datetime(2026, 1, 1, tzinfo=UTC)
    found, stale = cache.read_through(lambda v, k: ({(1, "a"): ({"x": 1}, t)}, {1}), [1], ["a"], store_down=False)
    assert stale == {1}
    assert cache.read_through(None, [1], ["a"], store_down=True) == ({(1, "a"): ({"x": 1}, t)}, {1})
    cache.read_through(lambda v, k: ({(1, "a"): ({"x": 1}, t)}, set()), [1], ["a"], store_down=False)
    assert cache.read_through(None, [1], ["a"], store_down=True)[1] == set()  # re-materialized: no longer stale

"""The prediction endpoint through Django (the same core the WSGI fast path uses): answers and every
bad-input case, with the status and a message naming the problem."""

import json

import pytest

from apps.deployments import logpipe
from apps.deployments.models import PredictionLog

from .factories import deploy, make_ready_version, row

URL = "/api/v1/deployments/fraud-api/predict"


@pytest.fixture
def served(project, users):
    version = make_ready_version(project=project, actor=users["owner"])
    dep, key = deploy(project=project, actor=users["owner"], version=version)
    return dep, key, version


def post(client, body, key, *, content_type="application/json", url=URL, **extra):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.generic("POST", url, data, content_type=content_type, headers=headers, **extra)


@pytest.mark.django_db
def test_predict_answers_with_version_probabilities_and_row_ids_and_logs_every_row(client, served):
    dep, key, version = served
    resp = post(client, {"instances": [row(), row(value=-1.0)]}, key)
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["model_version"] == {"id": version.pk, "model": "fraud-model", "version": "v1"}
    assert len(body["predictions"]) == 2
    first = body["predictions"][0]
    assert first["prediction"] in (0, 1) and set(first["probabilities"]) == {"0", "1"}
    assert abs(sum(first["probabilities"].values()) - 1) < 1e-9
    assert resp["X-Request-ID"] == body["request_id"]
    assert logpipe.drain() == 1
    logs = {str(p.request_id): p for p in PredictionLog.objects.all()}
    assert set(logs) == {p["request_id"] for p in body["predictions"]}
    log = logs[first["request_id"]]
    assert log.inputs == row() and log.version_id == version.pk and log.deployment_id == dep.pk
    assert log.output == first["prediction"] and log.latency_ms > 0
    assert logpipe.drain() == 0  # nothing left; replay would be a no-op anyway


@pytest.mark.django_db
@pytest.mark.parametrize("body, status, needle", [
    ({"instances": [{"f0": 1.0, "f1": 1.0, "f2": 1.0}]}, 422, "missing feature 'f3'"),
    ({"instances": [{**row(), "extra": 1.0}]}, 422, "unknown feature 'extra'"),
    ({"instances": [{**row(), "f1": "1.5"}]}, 422, "instances[0].f1 must be a number, got the string '1.5'"),
    ({"instances": [{**row(), "f2": True}]}, 422, "instances[0].f2 must be a number, got a boolean"),
    ({"instances": [{**row(), "f2": None}]}, 422, "null is not allowed"),
    ({"instances": [{**row(), "f2": [1.0]}]}, 422, "got a list"),
    ({"instances": []}, 422, "'instances' is empty"),
    ({"instances": [row()] * 101}, 413, "larger than the limit of 100"),
    ({"instances": row()}, 422, "'instances' must be a list"),
    ({"instances": [1.0]}, 422, "instances[0] must be an object"),
    ({"rows": [row()]}, 422, "Unknown top-level key 'rows'"),
    ({}, 422, "Missing 'instances'"),
    ({"entities": ["c1"]}, 422, "takes 'instances', not 'entities'"),
    ([row()], 422, "must be a JSON object"),
    ('{"instances": [{"f0": NaN, "f1": 1, "f2": 1, "f3": 1}]}', 422, "NaN is not allowed"),
    ('{"instances": [{"f0": Infinity, "f1": 1, "f2": 1, "f3": 1}]}', 422, "Infinity is not allowed"),
    ('{"instances": [{"f0": -Infinity, "f1": 1, "f2": 1, "f3": 1}]}', 422, "-Infinity is not allowed"),
    ('{"instances": [{"f0": 1, "f0": 2, "f1": 1, "f2": 1, "f3": 1}]}', 422, "Duplicate key 'f0'"),
    ('{"instances": [{"f0": 1,}]}', 400, "Malformed JSON"),
    ("not json", 400, "Malformed JSON"),
    (" ", 400, "Malformed JSON"),
    ("[" * 100_000 + "]" * 100_000, 400, "nested too deeply"),
    (b"\xff\xfe", 400, "not UTF-8"),
])
def test_predict_refuses_bad_input_naming_the_problem(client, served, body, status, needle):
    _, key, _ = served
    resp = post(client, body, key)
    assert resp.status_code == status, resp.content[:300]
    data = resp.json()
    assert needle in data["detail"], data
    assert "request_id" in data
    assert PredictionLog.objects.count() == 0 and logpipe.drain() == 1  # only the error event, no prediction


@pytest.mark.django_db
def test_integer_features_refuse_fractions_and_bool_features_refuse_numbers(client, project, users):
    contract = [{"name": "f0", "type": "int"}, {"name": "f1", "type": "bool"}, {"name": "f2", "type": "float"},
                {"name": "f3", "type": "float", "nullable": True}]
    version = make_ready_version(project=project, actor=users["owner"], contract=contract)
    _, key = deploy(project=project, actor=users["owner"], version=version)
    ok = {"f0": 3, "f1": True, "f2": 2, "f3": 0.5}
    assert post(client, {"instances": [ok]}, key).status_code == 200
    # null is allowed by this contract, but this model cannot take a missing value: a clear 422, not a 500
    resp = post(client, {"instances": [{**ok, "f3": None}]}, key)
    assert resp.status_code == 422 and "could not score" in resp.json()["detail"]
    bad = post(client, {"instances": [{**ok, "f0": 1.5}]}, key)
    assert bad.status_code == 422 and "instances[0].f0 must be an integer" in bad.json()["detail"]
    bad = post(client, {"instances": [{**ok, "f1": 1}]}, key)
    assert bad.status_code == 422 and "instances[0].f1 must be a boolean" in bad.json()["detail"]


@pytest.mark.django_db
def test_wrong_content_type_is_415_and_oversized_body_is_413_before_reading(client, served, settings):
    _, key, _ = served
    resp = post(client, json.dumps({"instances": [row()]}), key, content_type="text/plain")
    assert resp.status_code == 415 and "application/json" in resp.json()["detail"]
    settings.SERVING_MAX_BODY_BYTES = 1000
    big = json.dumps({"instances": [row()] * 50})
    resp = post(client, big, key)
    assert resp.status_code == 413 and "larger than the limit of 1,000 bytes" in resp.json()["detail"]


@pytest.mark.django_db
def test_fifty_megabyte_body_is_refused_without_being_read(served, settings):
    """The declared length alone decides: the stream is never read (a reader that explodes proves it)."""
    from apps.deployments import serving

    _, key, _ = served

    def explode(n=-1):
        raise AssertionError("the body must not be read")

    req = serving.Request(slug="fraud-api", content_type="application/json", content_length=50 * 1024 * 1024,
                          authorization=f"Bearer {key}", api_key="", read=explode, request_id=serving.new_request_id())
    resp = serving.predict(req)
    assert resp.status == 413 and resp.close
    assert b"52,428,800 bytes is larger than the limit" in resp.body


@pytest.mark.django_db
def test_missing_invalid_revoked_and_foreign_keys(client, served, project, users):
    from apps.deployments.models import DeploymentApiKey
    from apps.deployments.services import deployment_api_key_revoke

    dep, key, version = served
    body = {"instances": [row()]}
    assert post(client, body, None).status_code == 401
    assert "Missing API key" in post(client, body, None).json()["detail"]
    assert post(client, body, "sdk_nope_nope").status_code == 401
    other = make_ready_version(project=project, actor=users["owner"], name="other-model")
    _, other_key = deploy(project=project, actor=users["owner"], version=other, slug="other-api")
    resp = post(client, body, other_key)
    assert resp.status_code == 403 and "another deployment" in resp.json()["detail"]
    assert post(client, body, key, HTTP_X_API_KEY=key).status_code == 200
    deployment_api_key_revoke(key=DeploymentApiKey.objects.get(deployment=dep), actor=users["owner"])
    resp = post(client, body, key)
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]


@pytest.mark.django_db
def test_paused_deployment_answers_503_with_the_reason_and_resumes(client, served, users):
    from apps.deployments.services import deployment_pause, deployment_resume

    dep, key, _ = served
    deployment_pause(deployment=dep, actor=users["owner"], reason="maintenance window")
    resp = post(client, {"instances": [row()]}, key)
    assert resp.status_code == 503 and "paused: maintenance window" in resp.json()["detail"]
    deployment_resume(deployment=dep, actor=users["owner"])
    assert post(client, {"instances": [row()]}, key).status_code == 200


@pytest.mark.django_db
def test_unknown_deployment_is_404_json_and_get_is_405(client, served):
    _, key, _ = served
    resp = post(client, {"instances": [row()]}, key, url="/api/v1/deployments/nope/predict")
    assert resp.status_code == 404 and resp.json()["detail"] == "No deployment named 'nope'"
    assert client.get(URL).status_code == 405


@pytest.mark.django_db
def test_version_switch_is_seen_by_the_next_request_and_onnx_form_is_used(client, served, project, users):
    from apps.deployments.services import deployment_version_set

    dep, key, v1 = served
    v2 = make_ready_version(project=project, actor=users["owner"], seed=1, onnx=True)
    assert post(client, {"instances": [row()]}, key).json()["model_version"]["version"] == "v1"
    deployment_version_set(deployment=dep, actor=users["owner"], version=v2, reason="better")
    body = post(client, {"instances": [row()]}, key).json()
    assert body["model_version"] == {"id": v2.pk, "model": "fraud-model", "version": "v2"}
    from apps.deployments.serving import CACHE

    assert CACHE._predictors[v2.pk].format == "onnx"


@pytest.mark.django_db
def test_replaying_spooled_records_after_a_crash_never_duplicates_rows_or_statistics(client, served, settings):
    from apps.deployments.models import PredictionMinuteStat

    for _ in range(3):
        assert post(client, {"instances": [row()]}, key=served[1]).status_code == 200
    lines = [x for f in sorted(settings.SERVING_SPOOL_DIR.glob("*.seg")) for x in f.read_bytes().splitlines() if x]
    assert logpipe.drain() == 3
    logpipe.sink(lines)  # a drainer that died after committing but before moving its offset replays them
    assert PredictionLog.objects.count() == 3
    stat = PredictionMinuteStat.objects.get()
    assert (stat.requests, stat.rows, stat.errors) == (3, 3, 0) and sum(stat.latency_hist) == 3
    # A replayed batch that also carries new records: only the new rows land and count.
    for _ in range(2):
        assert post(client, {"instances": [row()]}, key=served[1]).status_code == 200
    logpipe.flush_own_segment()
    logpipe._writer = None
    fresh = [x for f in sorted(settings.SERVING_SPOOL_DIR.glob("*.seg")) for x in f.read_bytes().splitlines() if x]
    fresh = [x for x in fresh if x not in lines]
    assert len(fresh) == 2
    logpipe.sink(lines[:2] + fresh)
    assert PredictionLog.objects.count() == 5
    stat = PredictionMinuteStat.objects.get() if PredictionMinuteStat.objects.count() == 1 else None
    totals = PredictionMinuteStat.objects.all()
    assert sum(s.requests for s in totals) == 5 and sum(s.rows for s in totals) == 5
    assert stat is None or sum(stat.latency_hist) == 5


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "sdk_not-a-key", "slw_personal-token"])
def test_predict_without_valid_credentials_is_401_whether_or_not_the_slug_exists(client, served, key):
    known = post(client, {"instances": [row()]}, key)
    unknown = post(client, {"instances": [row()]}, key, url="/api/v1/deployments/no-such-deployment/predict")
    assert known.status_code == unknown.status_code == 401
    assert known.json()["detail"] == unknown.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("raw, field", [
    ('{"instances": [{"f0": 1, "f1": 1, "f2": 1, "f3": 1, "\\u0000": 1}]}', "instances[0]"),
    ('{"instances": [{"f0": 1, "f1": 1, "f2": 1, "f3": 1, "\\ud800": 1}]}', "instances[0]"),
    ('{"entities": ["a\\u0000b"]}', "entities[0]"),
    ('{"instances": [{"f0": "\\udfff", "f1": 1, "f2": 1, "f3": 1}]}', "instances[0].f0"),
])
def test_predict_refuses_nul_and_lone_surrogates_naming_the_field(client, served, raw, field):
    dep, key, _ = served
    resp = post(client, raw.encode(), key)
    assert resp.status_code == 422, resp.content
    assert resp.json()["errors"][0]["field"] == field


@pytest.mark.django_db
def test_predict_with_a_valid_key_and_a_nul_in_the_slug_is_422(client, served):
    dep, key, _ = served
    resp = post(client, {"instances": [row()]}, key, url="/api/v1/deployments/fraud%00api/predict")
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "deployment"


@pytest.mark.django_db
@pytest.mark.parametrize("onnx", [False, True], ids=["scikit-learn form", "ONNX form"])
def test_mixed_type_pipeline_serves_text_inputs_in_both_forms_equal_to_scikit_learn(client, project, users, onnx):
    import numpy as np
    import pandas as pd

    from apps.deployments import serving

    from .factories import churn_frame, churn_pipeline, make_ready_mixed_version

    serving.CACHE.clear()
    serving.CACHE.clear_models()  # version ids can be reused between tests
    version = make_ready_mixed_version(project=project, actor=users["owner"], onnx=onnx)
    _, key = deploy(project=project, actor=users["owner"], version=version, slug="churn-api")
    X, y = churn_frame()
    pipe = churn_pipeline(X, y)
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in X.head(25).to_dict("records")]
    resp = post(client, {"instances": rows}, key, url="/api/v1/deployments/churn-api/predict")
    assert resp.status_code == 200, resp.content
    got = resp.json()["predictions"]
    assert [g["prediction"] for g in got] == list(pipe.predict(pd.DataFrame(rows)))
    proba = np.array([[g["probabilities"][c] for c in pipe.classes_] for g in got])
    np.testing.assert_allclose(proba, pipe.predict_proba(pd.DataFrame(rows)), atol=1e-5 if onnx else 1e-12)
    predictor, _ = serving.CACHE.predictor(serving.CACHE.deployment("churn-api"))
    assert predictor.format == ("onnx" if onnx else "skops")
    bad = post(client, {"instances": [rows[0], {**rows[1], "plan": "enterprise"}]}, key,
               url="/api/v1/deployments/churn-api/predict")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "instances[1].plan"
    logpipe.drain()
    logged = PredictionLog.objects.filter(deployment__slug="churn-api").first()
    assert isinstance(logged.inputs["country"], str) and isinstance(logged.inputs["tenure months"], int)
    serving.CACHE.clear()


@pytest.mark.django_db
def test_deployment_page_shows_a_typed_curl_example_for_text_features(project, users, logged_in_client):
    from .factories import make_ready_mixed_version

    version = make_ready_mixed_version(project=project, actor=users["owner"])
    deploy(project=project, actor=users["owner"], version=version, slug="churn-api")
    page = logged_in_client(users["owner"]).get(f"/projects/{project.slug}/deployments/churn-api/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "&quot;country&quot;: &quot;DE&quot;" in text or '"country": "DE"' in text, text[:200]
    assert "Monthly Spend ($)" in text


def test_row_ids_are_unique_uuids_and_a_forked_process_draws_its_own():
    import os
    import uuid

    from apps.deployments.serving import _RowIds

    ids = _RowIds()
    taken = ids.take(1) + ids.take(5000) + ids.take(3)
    assert len(set(taken)) == len(taken)
    for text in taken[:50] + taken[-50:]:
        assert str(uuid.UUID(text)) == text
    assert int(uuid.UUID(taken[1])) == int(uuid.UUID(taken[0])) + 1  # one counter, one random prefix
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ids.take(1)[0].encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert child[:18] != taken[0][:18]  # new random high bits in the child, not the parent's sequence


@pytest.mark.django_db
def test_drained_minute_statistics_add_to_the_stored_row_element_by_element(served):
    """The drainer adds a batch's per-minute counts to a row that exists (one upsert on PostgreSQL)."""
    import uuid

    import orjson

    from apps.deployments import stats
    from apps.deployments.models import PredictionMinuteStat

    dep, _, version = served
    t = 1796500000.0  # a whole minute
    minute = logpipe._minute(t)
    PredictionMinuteStat.objects.create(deployment=dep, version=version, minute=minute, requests=5, rows=7,
                                        errors=1, latency_sum_ms=10.0, latency_hist=[1, 4])  # shorter than N_BUCKETS

    def line(latency, rows=1):
        return orjson.dumps({"k": "p", "t": t + 1, "d": dep.pk, "v": version.pk, "b": str(uuid.uuid4()),
                             "l": latency, "r": [[str(uuid.uuid4()), {"f0": 1.0}, 1, None, None]
                                                 for _ in range(rows)]})

    error = orjson.dumps({"k": "e", "t": t + 2, "d": dep.pk, "v": version.pk, "s": 422})
    other_minute = orjson.dumps({"k": "e", "t": t + 61, "d": dep.pk, "v": version.pk, "s": 503})
    logpipe.sink([line(0.3), line(0.3, rows=3), line(40.0), error, other_minute])
    stat = PredictionMinuteStat.objects.get(minute=minute)
    expected = stats.merge([1, 4], [0] * stats.N_BUCKETS)
    for latency in (0.3, 0.3, 40.0):
        expected[stats.bucket_of(latency)] += 1
    assert (stat.requests, stat.rows, stat.errors) == (8, 12, 2)
    assert stat.latency_sum_ms == pytest.approx(50.6)
    assert stat.latency_hist == expected and all(type(x) is int for x in stat.latency_hist)
    later = PredictionMinuteStat.objects.get(minute=logpipe._minute(t + 61))
    assert (later.requests, later.rows, later.errors, sum(later.latency_hist)) == (0, 0, 1, 0)
    logpipe.sink([line(2.0)])  # a second batch adds again
    stat.refresh_from_db()
    expected[stats.bucket_of(2.0)] += 1
    assert (stat.requests, stat.rows, stat.latency_hist) == (9, 13, expected)

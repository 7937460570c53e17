"""Property-based fuzzing of the live API against its own OpenAPI document (schemathesis).

A real portal: a fresh database (SQLite in a temporary directory unless SLIPWAY_FUZZ_DATABASE_URL names
a PostgreSQL database to use and wipe), the demo seeded through the real services, gunicorn with the
production WSGI stack (the serving dispatcher in front of Django). Then:

- an owner's token: schemathesis over every operation (except revoking its own token) must find no 5xx,
  no undocumented status, no response that breaks its documented schema, headers or content type;
- every GET the demo can fill answers 200 with the documented schema (owner);
- a non-member's token: every operation on an object of the demo's ``churn`` project, with a body
  schemathesis generates as valid, must not answer 2xx.

Bounded: SLIPWAY_FUZZ_SECONDS (default 45) for the owner's run; about 2-3 minutes in all.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.fuzz

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _create_postgres_database(url: str) -> None:
    """The fuzz database of SLIPWAY_FUZZ_DATABASE_URL, created if missing (it is wiped before each run)."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        return
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(scheme="postgresql", path="/postgres")), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "SLIPWAY_",
                                                                       "SERVING_", "PROMETHEUS_"))}
    env.update(SLIPWAY_DATA_DIR=str(data), CELERY_BROKER_URL="filesystem://", DEBUG="false",
               SECRET_KEY="fuzz-only", DJANGO_SECURE_SSL_REDIRECT="false", ALLOWED_HOSTS="127.0.0.1",
               GUNICORN_DRAINER="false", OMP_NUM_THREADS="1", DJANGO_SETTINGS_MODULE="portal.settings",
               DATABASE_URL=os.environ.get("SLIPWAY_FUZZ_DATABASE_URL", f"sqlite:///{data / 'fuzz.sqlite3'}"))

    def manage(*args, timeout=300):
        out = subprocess.run([str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    if "SLIPWAY_FUZZ_DATABASE_URL" in os.environ:
        _create_postgres_database(os.environ["SLIPWAY_FUZZ_DATABASE_URL"])
        manage("flush", "--no-input")
    manage("migrate", "-v0")
    manage("seed_demo")
    line = next(x for x in manage("shell", "-c", (Path(__file__).parent / "fuzz_setup.py").read_text()).splitlines()
                if x.startswith("FUZZ-SETUP "))
    setup = json.loads(line.removeprefix("FUZZ-SETUP "))
    port = _free_port()
    server = subprocess.Popen([str(BIN / "gunicorn"), "-c", "python:apps.deployments.gunicorn_conf",
                               "portal.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                              cwd=ROOT, env=env, stdout=open(data / "gunicorn.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(60):
            try:
                if requests.get(f"{url}/api/v1/openapi.json", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("gunicorn did not answer")
        yield {"url": url, "data": data, **setup}
    finally:
        os.killpg(server.pid, signal.SIGQUIT)  # gunicorn's quick shutdown
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def _path_value(ids: dict, path: str, param: str):
    segment = path.split("{" + param + "}")[0].rstrip("/").rsplit("/", 1)[-1]
    return ids.get((param, segment)) or ids.get(param)


def test_a_non_member_gets_no_2xx_on_another_projects_objects(portal):
    import schemathesis
    from hypothesis.errors import NonInteractiveExampleWarning

    ids = {tuple(k) if isinstance(k, list) else k: v for k, v in portal["ids"]}
    schema = schemathesis.openapi.from_url(f"{portal['url']}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {portal['outsider']}"}
    checked, leaks = 0, []
    for result in schema.get_all_operations():
        op = result.ok()
        params = [p.name for p in op.path_parameters]
        if not params or "token_id" in params:
            continue  # own data (projects list, tokens, portfolio, inbox), or the caller's own tokens
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonInteractiveExampleWarning)
            case = op.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE).example()
        values = {p: _path_value(ids, op.path, p) for p in params}
        if any(v is None for v in values.values()):
            continue
        case.path_parameters = values
        resp = case.call(base_url=f"{portal['url']}", headers=headers)
        checked += 1
        if 200 <= resp.status_code < 300:
            leaks.append(f"{op.method.upper()} {case.formatted_path} → {resp.status_code}")
        assert resp.status_code < 500, (op.method, case.formatted_path, resp.text[:500])
    assert checked >= 60, checked
    assert not leaks, leaks


def test_every_get_the_demo_can_fill_answers_its_documented_schema(portal):
    """Each GET operation, called by the owner on real demo objects, answers 200 with a body (and headers)
    that match what /api/openapi.json documents."""
    import schemathesis
    from schemathesis.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    ids = {tuple(k) if isinstance(k, list) else k: v for k, v in portal["ids"]}
    schema = schemathesis.openapi.from_url(f"{portal['url']}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {portal['owner']}"}
    checks = [status_code_conformance, content_type_conformance, response_headers_conformance,
              response_schema_conformance]
    called, not_ok = [], []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.method.upper() != "GET":
            continue
        params = [p.name for p in op.path_parameters]
        values = {p: _path_value(ids, op.path, p) for p in params}
        if any(v is None for v in values.values()):
            continue
        case = op.Case(path_parameters=values)
        resp = case.call(base_url=portal["url"], headers=headers)
        called.append(f"GET {case.formatted_path}")
        if resp.status_code != 200:
            not_ok.append(f"GET {case.formatted_path} → {resp.status_code} {resp.text[:200]}")
            continue
        case.validate_response(resp, checks=checks)
    assert not not_ok, not_ok
    assert len(called) >= 35, called


def test_a_client_generated_from_the_schema_works(portal, tmp_path):
    """The README's recipe: openapi-python-client generates a typed client from /api/openapi.json, and it
    lists the demo's projects with an owner's token."""
    out = subprocess.run([str(BIN / "openapi-python-client"), "generate", "--url",
                          f"{portal['url']}/api/v1/openapi.json", "--output-path", str(tmp_path / "client"),
                          "--overwrite"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (tmp_path / "client" / "slipway_api_client" / "client.py").exists(), out.stdout + out.stderr
    sys.path.insert(0, str(tmp_path / "client"))
    try:
        from slipway_api_client import AuthenticatedClient
        from slipway_api_client.api.projects import apps_projects_api_get_job, apps_projects_api_list_projects
        from slipway_api_client.models import ErrorOut

        client = AuthenticatedClient(base_url=portal["url"], token=portal["owner"])
        projects = apps_projects_api_list_projects.sync(client=client, limit=10)
        assert {p.slug for p in projects} >= {"churn", "fraud"}
        assert projects[0].created_at.tzinfo is not None  # typed: datetimes parsed
        ids = {tuple(k) if isinstance(k, list) else k: v for k, v in portal["ids"]}
        job = apps_projects_api_get_job.sync(client=client, job_id=ids["job_id"])
        assert str(job.id) == ids["job_id"]
        missing = apps_projects_api_get_job.sync(client=client, job_id="00000000-0000-0000-0000-000000000000")
        assert isinstance(missing, ErrorOut) and missing.detail == "Job not found"
    finally:
        sys.path.remove(str(tmp_path / "client"))
        for name in [m for m in sys.modules if m.startswith("slipway_api_client")]:
            del sys.modules[name]


def _raw_http(url: str, data: bytes) -> tuple[int, dict, dict]:
    """Send raw bytes to the server; the status, headers and JSON body of its answer."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # it answered and closed before reading everything
            pass
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:  # the server closed with unread input after answering
            pass
    assert answer, "no answer before the connection closed"
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_gunicorn_bounds_the_request_line_and_headers_and_answers_in_json(portal):
    """The production server caps the request line (8,190 bytes) and header fields instead of buffering
    whatever a client sends; every refusal is the API's JSON error shape. Below the cap the portal's own
    bound (8,000 characters of path + query) answers 414."""
    auth = {"Authorization": f"Bearer {portal['owner']}"}
    assert requests.get(f"{portal['url']}/api/v1/projects?x=" + "a" * 7950, headers=auth, timeout=30).ok
    resp = requests.get(f"{portal['url']}/api/v1/projects?x=" + "a" * 8100, headers=auth, timeout=30)
    assert resp.status_code == 414 and "8,000" in resp.json()["detail"], resp.text  # the portal's answer
    resp = requests.get(f"{portal['url']}/api/v1/projects?x=" + "a" * 9000, headers=auth, timeout=30)
    assert resp.status_code == 414 and resp.headers["Content-Type"] == "application/json", resp.text  # gunicorn's
    assert resp.json()["errors"] == [] and "URI Too Long" in resp.json()["detail"]
    # a request line that never ends: refused once past the cap, not read to the end
    started = time.monotonic()
    status, headers, body = _raw_http(portal["url"], b"GET /api/v1/projects?x=" + b"a" * 2_000_000)
    assert status == 414 and headers["Content-Type"] == "application/json" and body["detail"]
    assert time.monotonic() - started < 5
    # one oversized header field, and too many fields
    big = b"GET /api/v1/projects HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n"
    status, headers, body = _raw_http(portal["url"], big)
    assert status in (400, 431) and headers["Content-Type"] == "application/json" and body["detail"], (status, body)
    many = b"GET /api/v1/projects HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-F%d: 1\r\n" % i for i in range(150)) + b"\r\n"
    status, headers, body = _raw_http(portal["url"], many)
    assert status in (400, 431) and headers["Content-Type"] == "application/json", (status, body)
    # the server still answers normally afterwards
    assert requests.get(f"{portal['url']}/api/v1/projects", headers=auth, timeout=30).ok


# Operations whose schema-valid requests may still be refused, for reasons no JSON Schema can state: the
# request refers to data that must exist in a given form (a source's column, an alert rule of this
# deployment, the entity's join key, the answers an item allows), a file's content (model, CSV/Parquet),
# or an order between two fields (window_end after window_start). The fuzzer accepts their documented 4xx
# as well; every other operation must accept every request its schema allows.
DATA_DEPENDENT = {
    "POST /api/v1/projects/{project}/feature-views": "the feature columns must exist in the source",
    "PATCH /api/v1/projects/{project}/feature-views/{name}": "the feature columns must exist in the source",
    "POST /api/v1/projects/{project}/feature-sets": "the referenced views and features must exist",
    "PATCH /api/v1/projects/{project}/feature-sets/{name}": "the referenced views and features must exist",
    "POST /api/v1/projects/{project}/feature-sets/{name}/online": "keys hold the entities' join keys and types",
    "POST /api/v1/projects/{project}/sources/{name}/versions": "the file must be CSV or Parquet",
    "POST /api/v1/projects/{project}/training-sets": "the label file must be CSV or Parquet with its columns",
    "POST /api/v1/projects/{project}/models": "a contract, unless a feature set provides one",
    "POST /api/v1/projects/{project}/models/{model}/versions": "the artifact must be a model file",
    "PUT /api/v1/projects/{project}/models/{model}/contract": "categories only where the type allows them",
    "POST /api/v1/projects/{project}/models/{model}/training-jobs": "a label file, a validated parent version, "
                                                                    "window_end after window_start",
    "POST /api/v1/projects/{project}/deployments": "the version and the owner must exist",
    "POST /api/v1/projects/{project}/deployments/{deployment}/shadow-runs": "the candidate must be a validated "
                                                                             "version that is not in production",
    "PUT /api/v1/deployments/{deployment}/retraining-policy": "an alert_rule trigger names a rule of the deployment",
    "PUT /api/v1/projects/{project}/readiness/answers/{item_key}": "the answers allowed depend on the item",
}


def _fuzz_config(portal) -> Path:
    """schemathesis.toml: the demo's real objects as path parameters (so operations reach real data, not
    only 404s), and the 4xx the DATA_DEPENDENT operations may answer to schema-valid data."""
    lines = ["[parameters]"]
    scoped = []
    for key, value in portal["ids"]:
        if value is None:
            continue
        value = int(value) if value.isdigit() else value
        if isinstance(key, list):
            scoped += ["", "[[operations]]", f'include-path-regex = "/{key[1]}/\\\\{{{key[0]}\\\\}}"',
                       f'parameters = {{ "path.{key[0]}" = {json.dumps(value)} }}']
        else:
            lines.append(f'"path.{key}" = {json.dumps(value)}')
    for name in DATA_DEPENDENT:
        scoped += ["", "[[operations]]", f"include-name = {json.dumps(name)}",
                   'checks.positive_data_acceptance.expected-statuses = '
                   '["2xx", "3xx", "401", "403", "404", "409", "413", "415", "422", "429", "5xx"]']
    path = portal["data"] / "schemathesis.toml"
    path.write_text("\n".join(lines + scoped) + "\n")
    return path


# Last: the fuzzer's writes (archiving, membership changes, pauses) may change the demo the tests above read.
def test_owner_fuzzing_finds_no_server_error_and_no_schema_violation(portal):
    """Every check schemathesis has (--checks all): no 5xx; statuses, content types, headers and bodies as
    documented; every schema-valid request accepted (but DATA_DEPENDENT's documented 4xx); every
    schema-violating one refused."""
    seconds = os.environ.get("SLIPWAY_FUZZ_SECONDS", "45")
    out = subprocess.run(
        [str(BIN / "schemathesis"), "--config-file", str(_fuzz_config(portal)), "run",
         f"{portal['url']}/api/v1/openapi.json", "-H", f"Authorization: Bearer {portal['owner']}",
         "--checks", "all",
         "--phases", "examples,coverage,fuzzing", "--max-examples", "6", "--seed", "13",
         "--exclude-path", "/api/v1/tokens/{token_id}", "--max-time", seconds, "--workers", "1",
         "--no-color", "--request-timeout", "30"],
        cwd=portal["data"], capture_output=True, text=True, timeout=int(seconds) + 120)
    (portal["data"] / "schemathesis.out").write_text(out.stdout)
    assert out.returncode == 0, out.stdout[-12000:]
    import re

    tested = re.search(r"Tested: (\d+)", out.stdout)
    assert tested and int(tested.group(1)) >= 95, out.stdout[-3000:]  # every operation but the excluded one

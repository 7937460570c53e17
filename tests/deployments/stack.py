"""A real serving stack for load and fault tests (also used by bench/serving.py).

``prepare_database(url, artifacts)`` migrates a fresh database in a subprocess and creates a project,
users, ready model versions and a live deployment with an API key. ``Gunicorn`` runs the portal
(``portal.wsgi``) under gunicorn with several sync workers. ``LoadClient`` keeps N keep-alive HTTP
connections busy from threads and records every answer. ``ThrowawayPostgres`` is a private PostgreSQL
cluster (initdb/pg_ctl) on a free port that a test may stop and start — never the shared one.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")

SETUP = r"""
import json, os, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from apps.projects.services import project_create
from tests.deployments.factories import make_ready_version, deploy
n = int(os.environ.get("STACK_FEATURES", "4"))
kinds = os.environ.get("STACK_KINDS", "logreg,logreg").split(",")
onnx = os.environ.get("STACK_ONNX", "0") == "1"
User = get_user_model()
owner = User.objects.create_user(username="owner", password="x")
project = project_create(actor=owner, name="Serving", slug="serving")
versions = [make_ready_version(project=project, actor=owner, kind=k, n_features=n, seed=i, onnx=onnx)
            for i, k in enumerate(kinds)]
dep, key = deploy(project=project, actor=owner, version=versions[0], slug="load-api", max_batch=1000)
extra = []
for i in range(int(os.environ.get("STACK_DEPLOYMENTS", "0"))):  # more deployments, one model each
    from apps.deployments.services import deployment_api_key_create
    v = make_ready_version(project=project, actor=owner, name=f"model-{i:02d}", kind=kinds[0], n_features=n,
                           seed=100 + i, onnx=onnx)
    d, k = deploy(project=project, actor=owner, version=v, slug=f"dep-{i:02d}", max_batch=1000)
    spare, spare_key = deployment_api_key_create(deployment=d, actor=owner, name="spare")
    extra.append({"slug": d.slug, "key": k, "deployment": d.pk, "version": v.pk, "spare_key": spare_key,
                  "spare_key_id": spare.pk})
print("STACK" + json.dumps({"key": key, "slug": dep.slug, "versions": [v.pk for v in versions],
                            "deployment": dep.pk, "extra": extra}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(db_url: str, data_dir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update({
        "DATABASE_URL": db_url, "SLIPWAY_DATA_DIR": str(data_dir),
        "SLIPWAY_ARTIFACT_ROOT": str(data_dir / "artifacts"), "SERVING_SPOOL_DIR": str(data_dir / "spool"),
        "DJANGO_SETTINGS_MODULE": "portal.settings", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
        "SERVING_DRAIN_INTERVAL": "0.5", "DATABASE_CONN_MAX_AGE": "600",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def prepare_database(db_url: str, data_dir: Path, *, n_features: int = 4, kinds=("logreg", "logreg"),
                     onnx: bool = False, deployments: int = 0) -> dict:
    """``deployments`` more deployments ``dep-00``… (one model each, a key and a spare key) in ``extra``."""
    env = base_env(db_url, data_dir, STACK_FEATURES=n_features, STACK_KINDS=",".join(kinds),
                   STACK_ONNX="1" if onnx else "0", STACK_DEPLOYMENTS=deployments)
    out = subprocess.run([PY, "-c", SETUP], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"stack set-up failed:\n{out.stderr[-4000:]}")
    line = [x for x in out.stdout.splitlines() if x.startswith("STACK")][-1]
    return json.loads(line[5:])


def wait_http(port: int, timeout: float = 90) -> None:
    """Until /healthz answers 200 (the readiness probe: a prediction through the real path)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            last = f"{resp.status} {resp.read()[:300]!r}"
            if resp.status == 200:
                return
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not become ready: {last}")


def http_get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def metric_values(port: int, name: str) -> dict[str, float]:
    """Samples of one metric from /metrics: {label text: value} (label text "" when unlabelled)."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}: {body[:300]!r}")
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            labels = head[len(name):].strip("{}")
            out[labels] = out.get(labels, 0.0) + float(value)
    return out


def run_django(db_url: str, data_dir: Path, code: str) -> str:
    """Run Python code against the stack's database in a subprocess (django set up); returns stdout."""
    out = subprocess.run([PY, "-c", "import django; django.setup()\n" + code], cwd=ROOT,
                         env=base_env(db_url, data_dir), capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return out.stdout


class Gunicorn:
    def __init__(self, env: dict, *, workers: int = 3, app: str = "portal.wsgi:application", log: Path | None = None,
                 conf: str = "python:apps.deployments.gunicorn_conf", extra: list[str] | None = None):
        self.port = free_port()
        self.env = env
        self.log = log or Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
        # One metrics folder per server: two servers on one data folder (the bench) must not share or wipe it.
        multiproc = Path(env["SLIPWAY_DATA_DIR"]) / f"prom-{self.port}"
        shutil.rmtree(multiproc, ignore_errors=True)
        multiproc.mkdir(parents=True)
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(multiproc))
        cmd = [GUNICORN, "-c", conf, "-w", str(workers), "-b", f"127.0.0.1:{self.port}",
               "--backlog", "2048", "--timeout", "30", *(extra or []), app]
        self._fh = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_http(self.port)

    def wait_drainer(self, timeout: float = 60) -> None:
        """Until the drainer process has started (its own log line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if '"msg":"Prediction log drainer started"' in self.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError("the prediction-log drainer did not start")

    def restart_workers(self, timeout: float = 90) -> list[int]:
        """SIGTERM every serving worker; return once as many new workers run (the master forks them)."""
        old = self.worker_pids()
        for pid in old:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.worker_pids()
            if len(now) >= len(old) and not set(now) & set(old):
                return now
            time.sleep(0.2)
        raise RuntimeError("the workers were not replaced")

    def worker_pids(self) -> list[int]:
        """The serving workers (the master's children other than its prediction-log drainer)."""
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(line.split()[0]) for line in out.stdout.splitlines()
                if line.strip() and "portal.entrypoint drain" not in line]

    def drainer_pids(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(line.split()[0]) for line in out.stdout.splitlines() if "portal.entrypoint drain" in line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # quick shutdown: spooled records survive anyway
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:  # workers the master did not reap (it was stopped mid-restart) must not outlive the test
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._fh.close()


@dataclass
class Result:
    status: int
    body: dict | None
    error: str = ""
    latency: float = 0.0


@dataclass
class LoadStats:
    results: list[Result] = field(default_factory=list)

    @property
    def ok(self) -> list[Result]:
        return [r for r in self.results if r.status == 200]

    def statuses(self) -> dict:
        out: dict = {}
        for r in self.results:
            key = r.status if r.status else f"conn:{r.error}"
            out[key] = out.get(key, 0) + 1
        return out

    def answered_ids(self) -> set[str]:
        return {p["request_id"] for r in self.ok for p in r.body["predictions"]}


def predict_once(conn: http.client.HTTPConnection, slug: str, key: str, payload: bytes) -> Result:
    started = time.perf_counter()
    try:
        conn.request("POST", f"/api/v1/deployments/{slug}/predict", body=payload,
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        latency = time.perf_counter() - started
        try:
            body = json.loads(raw)
        except ValueError:
            return Result(resp.status, None, error=f"not JSON: {raw[:80]!r}", latency=latency)
        return Result(resp.status, body, latency=latency)
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        return Result(0, None, error=type(exc).__name__, latency=time.perf_counter() - started)


class LoadClient:
    """``connections`` threads, each with its own keep-alive connection, posting until stopped."""

    def __init__(self, port: int, slug: str, key: str, payload: bytes, connections: int = 64):
        self.port, self.slug, self.key, self.payload = port, slug, key, payload
        self.connections = connections
        self.stats = LoadStats()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        local = []
        while not self._stop.is_set():
            local.append(predict_once(conn, self.slug, self.key, self.payload))
        with self._lock:
            self.stats.results.extend(local)
        conn.close()

    def start(self) -> LoadClient:
        for _ in range(self.connections):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> LoadStats:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        return self.stats


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temp folder, run as the ``postgres`` OS user when we are root."""

    def __init__(self):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql")
        self.bin = bins[-1]
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="slipway-pg-"))
        self.data = self.dir / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                     "fsync = off\nmax_connections = 200\n")
        self.start()
        self._run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "slipway"])

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/slipway"

    def _run(self, cmd):
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self):
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "start"])

    def stop(self, mode: str = "fast"):
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def destroy(self):
        try:
            self.stop("immediate")
        except Exception:  # noqa: BLE001 - already stopped
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def count_logged(db_url: str, data_dir: Path, deployment_id: int | list[int]) -> set[str]:
    """Request ids in the prediction log of one or more deployments, read in a subprocess (the stack's
    own database). Raises when a request id appears twice."""
    ids = deployment_id if isinstance(deployment_id, list) else [deployment_id]
    code = ("import django, json; django.setup(); from apps.deployments.models import PredictionLog; "
            f"ids = [str(x) for x in PredictionLog.objects.filter(deployment_id__in={ids!r})"
            ".values_list('request_id', flat=True)]; assert len(ids) == len(set(ids)), 'duplicate rows'; "
            "print('IDS' + json.dumps(ids))")
    out = subprocess.run([PY, "-c", code], cwd=ROOT, env=base_env(db_url, data_dir), capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return set(json.loads([x for x in out.stdout.splitlines() if x.startswith("IDS")][-1][3:]))


def drain_now(db_url: str, data_dir: Path) -> None:
    code = "import django; django.setup(); from apps.deployments.services import prediction_log_drain as d; d()"
    subprocess.run([PY, "-c", code], cwd=ROOT, env=base_env(db_url, data_dir), check=True, capture_output=True,
                   timeout=120)

"""Benchmark: the portal's prediction endpoint vs a bare WSGI endpoint calling the same models.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/slipway_serving .venv/bin/python bench/serving.py
    ... bench/serving.py --quick                       # 3 s phases, 1 round, sync only
    ... bench/serving.py --seconds 10 --rounds 3 --worker-classes sync,gthread --connections 1,8,64 --models 1,50

Creates a throwaway database next to DATABASE_URL's (dropped at the end) with 50 deployments, each serving
its own READY LogisticRegression (``--kind hgb``: HistGradientBoosting) on 20 numeric features, and starts,
per worker class (sync, gthread with one thread) and per round, two fresh gunicorn servers with the same
worker count and worker settings (gthread: the portal's ``BalancedThreadWorker`` on both, so keep-alive
connections spread evenly over the workers; ``--reuse-port``: ``SO_REUSEPORT`` on both instead):

- the portal (``portal.wsgi`` with ``gunicorn_conf`` and its production settings, ``DEBUG=false``: the real
  stack — API-key auth, strict contract validation, the spooled prediction log drained into PostgreSQL by its
  drainer process, Prometheus metrics, JSON access log);
- a bare WSGI app that parses the JSON, builds the row and calls the same scikit-learn estimator (the
  same skops bytes) — no framework, no auth, no log.

Load: ``wrk`` (a C load generator; Debian package ``wrk``) with a Lua script that POSTs round-robin over
the deployments, when it is installed; otherwise (or with ``--client python``) an asyncio client, which
saturates first on a small machine and pulls every ratio towards 1 — the report says which was used.
Each (models, connections) cell runs once per round, portal then bare, so that background load on the
machine hits both sides alike; the servers are started afresh for every round, because a process's memory
layout shifts its speed by a few per cent for its whole life. The table gives the median and the range of
the ratios over the rounds.

Reported per side: p50/p99 latency under that load, answered requests per second, and server CPU per
request — utime+stime from /proc of the gunicorn master, its workers and (portal) its drainer process,
plus the PostgreSQL backends connected to the bench database — so the CPU ratio does not depend on the
client. Errors (any non-200 answer, connect/read/write errors, timeouts) are reported on their own,
never counted as latency or throughput, and make the run fail (exit 1). At the end it waits for the log
to drain and checks that every answered prediction is logged (wrk does not count the answers still in
flight when a phase stops, so up to one per connection per phase may be logged but not counted).

Goals (issue 18): p50 ≤ 1.3×, throughput ≥ 0.8×, CPU per request ≤ 1.3× bare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
N_FEATURES = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the bare endpoint (imported by gunicorn as ``serving:bare_app`` with --chdir bench) -----------

_BARE: dict = {}


def _bare_models() -> dict:
    if not _BARE:
        import skops.io as sio

        sys.path.insert(0, str(ROOT))
        from apps.registry.allowlist import skops_trusted_types

        for slug, (path, names) in json.loads(Path(os.environ["BENCH_BARE_MODELS"]).read_text()).items():
            est = sio.loads(Path(path).read_bytes(), trusted=skops_trusted_types())
            _BARE[slug] = (est, names, [str(c) for c in est.classes_])
    return _BARE


def bare_app(environ, start_response):
    import numpy as np

    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    slug = environ["PATH_INFO"].split("/")[4]
    est, names, classes = _bare_models()[slug]
    body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    X = np.array([[row[n] for n in names] for row in body["instances"]], dtype=float)
    proba = est.predict_proba(X)
    labels = est.classes_[proba.argmax(axis=1)]
    out = json.dumps({"predictions": [{"prediction": lab.item(), "probabilities": dict(zip(classes, p.tolist(), strict=True))}
                                      for lab, p in zip(labels, proba, strict=True)]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


# --- server CPU from /proc ------------------------------------------------------------------------


def _stat(pid: int, kernel: bool = False) -> tuple[int, int] | None:
    """(ppid, utime+stime ticks) of a process — ``kernel``: stime only — or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[12]) if kernel else int(fields[11]) + int(fields[12]))


def tree_ticks(root: int, kernel: bool = False) -> dict[int, int]:
    """utime+stime ticks (``kernel``: stime) of ``root`` and all its descendants."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry), kernel)
            if st is not None:
                stats[int(entry)] = st
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out[pid] = stats[pid][1]
            todo.extend(p for p, (ppid, _) in stats.items() if ppid == pid)
    return out


class CpuMeter:
    """CPU seconds used by one server (process tree) and, optionally, the database's backends."""

    def __init__(self, root_pid: int, pg_url: str | None = None, pg_db: str | None = None):
        self.root, self.pg_url, self.pg_db = root_pid, pg_url, pg_db

    def _pg_pids(self) -> list[int]:
        if not self.pg_url:
            return []
        import psycopg

        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
                                               "pid <> pg_backend_pid()", (self.pg_db,)).fetchall()]

    def sample(self) -> dict[tuple[str, int], int]:
        """{(part, pid): ticks}; part is "workers" (master and workers), "drainer" or "db"."""
        ticks = {}
        for pid, t in tree_ticks(self.root).items():
            try:
                drainer = b"portal.entrypoint" in Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                drainer = False
            ticks[("drainer" if drainer else "workers", pid)] = t
        for pid, t in tree_ticks(self.root, kernel=True).items():  # of which in the kernel (not in "total")
            ticks[("kernel", pid)] = t
        for pid in self._pg_pids():
            st = _stat(pid)
            if st is not None:
                ticks[("db", pid)] = st[1]
        return ticks

    @staticmethod
    def seconds(before: dict, after: dict) -> dict[str, float]:
        """CPU seconds between two samples, per part and in "total"."""
        out = {"workers": 0.0, "drainer": 0.0, "db": 0.0, "kernel": 0.0}
        for key, t in after.items():
            out[key[0]] += max(0, t - before.get(key, 0)) / CLK_TCK
        out["total"] = out["workers"] + out["drainer"] + out["db"]
        return out


# --- load generators --------------------------------------------------------------------------------

LUA = r"""
local specs = %s
local reqs = {}
local n = 0
init = function(args)
  for i, s in ipairs(specs) do
    reqs[i] = wrk.format("POST", s[1], s[2], s[3])
  end
  n = math.random(#reqs)
end
request = function()
  n = n %% #reqs + 1
  return reqs[n]
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d %%d %%d\n", summary.requests, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def wrk_script(path: Path, targets: list[dict]) -> Path:
    specs = ",\n".join(
        "{" + ", ".join([_lua_string(t["path"]),
                         "{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in t["headers"].items()) + "}",
                         _lua_string(t["body"].decode())]) + "}"
        for t in targets)
    path.write_text(LUA % ("{\n" + specs + "\n}"))
    return path


def run_wrk(port: int, script: Path, connections: int, seconds: float) -> dict:
    threads = 1 if connections < 4 else 2
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s", "--timeout", "10s",
                          "-s", str(script), f"http://127.0.0.1:{port}"], capture_output=True, text=True,
                         timeout=seconds + 60)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    if not line:
        raise RuntimeError(f"wrk failed: {out.stdout[-800:]} {out.stderr[-800:]}")
    req, dur, e_conn, e_read, e_write, e_status, e_timeout, p50, p99 = (int(x) for x in line[-1].split()[1:])
    errors = {k: v for k, v in (("connect", e_conn), ("read", e_read), ("write", e_write), ("non-2xx", e_status),
                                ("timeout", e_timeout)) if v}
    return {"ok": req - e_status, "elapsed": dur / 1e6, "errors": errors, "p50": p50 / 1000, "p99": p99 / 1000}


def _raw(port: int, t: dict) -> bytes:
    head = f"POST {t['path']} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in t["headers"].items()) + f"Content-Length: {len(t['body'])}\r\n\r\n"
    return head.encode() + t["body"]


async def _conn_loop(port: int, raws: list[bytes], offset: int, stop_at: float, res: dict):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < stop_at:
            raw = raws[i % len(raws)]
            i += 1
            t0 = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            j = lower.find(b"content-length:")
            await reader.readexactly(int(lower[j + 15:lower.find(b"\r\n", j)]))
            if status == 200:
                res["lat"].append(time.perf_counter() - t0)
            else:
                res["errors"][f"HTTP {status}"] = res["errors"].get(f"HTTP {status}", 0) + 1
            if b"connection: close" in lower:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, asyncio.IncompleteReadError) as exc:
        res["errors"][type(exc).__name__] = res["errors"].get(type(exc).__name__, 0) + 1
    finally:
        writer.close()


def run_python(port: int, targets: list[dict], connections: int, seconds: float) -> dict:
    raws = [_raw(port, t) for t in targets]
    res: dict = {"lat": [], "errors": {}}

    async def main():
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*[_conn_loop(port, raws, k * 7, stop_at, res) for k in range(connections)])

    t0 = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - t0
    lat = sorted(res["lat"]) or [0.0]
    return {"ok": len(res["lat"]), "elapsed": elapsed, "errors": res["errors"],
            "p50": 1000 * lat[len(lat) // 2], "p99": 1000 * lat[int(len(lat) * 0.99)]}


# --- orchestration ------------------------------------------------------------------------------

SETUP = r"""
import json, os
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from apps.common.storage import artifact_store
from apps.projects.services import project_create
from tests.deployments.factories import make_ready_version, deploy
owner = get_user_model().objects.create_user(username="bench", password="x")
project = project_create(actor=owner, name="Bench", slug="bench")
onnx = os.environ["BENCH_ONNX"] == "1"
out = {}
for i in range(int(os.environ["BENCH_MODELS"])):
    slug = f"bench-{i:02d}"
    v = make_ready_version(project=project, actor=owner, name=slug, kind=os.environ["BENCH_KIND"], n_features=20,
                           seed=i, onnx=onnx)
    dep, key = deploy(project=project, actor=owner, version=v, slug=slug, max_batch=1000)
    out[slug] = {"key": key, "deployment": dep.pk, "path": str(artifact_store().path(v.safe_artifact_key)),
                 "names": v.model.feature_names}
print("BENCH" + json.dumps(out))
"""


def _targets(info: dict, slugs: list[str], portal: bool) -> list[dict]:
    out = []
    for slug in slugs:
        names = info[slug]["names"]
        body = json.dumps({"instances": [{n: 0.1 * (i + 1) for i, n in enumerate(names)}]}).encode()
        headers = {"Content-Type": "application/json"}
        if portal:
            headers["Authorization"] = f"Bearer {info[slug]['key']}"
        out.append({"path": f"/api/v1/deployments/{slug}/predict", "headers": headers, "body": body})
    return out


def _fmt_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"



BALANCED = "apps.deployments.gunicorn_workers.BalancedThreadWorker"
PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "bench-" + "k" * 60}  # what the README's production command sets


def _start_servers(args, wclass: str, url: str, tmp: Path, rnd: int):
    """The portal (its production settings and gunicorn_conf) and the bare app, same worker settings."""
    from tests.deployments.stack import Gunicorn, base_env

    reuse = "true" if args.reuse_port and wclass == "gthread" else "false"
    common = ["--worker-connections", "1000"]
    portal_env = base_env(url, tmp, GUNICORN_WORKER_CLASS=wclass, GUNICORN_REUSE_PORT=reuse,
                          SERVING_ACCESS_LOG="false" if args.no_access_log else "true", LOG_LEVEL="INFO",
                          SERVING_DRAIN_INTERVAL="1.0", **PRODUCTION)
    portal = Gunicorn(portal_env, workers=args.workers, log=tmp / f"portal-{wclass}-{rnd}.log", extra=common)
    # the bare app: the same worker class and settings as the portal's gunicorn_conf, none of its hooks
    bare_class = BALANCED if wclass == "gthread" and reuse == "false" else wclass
    bare_conf = tmp / f"bare_gunicorn_{wclass}.py"
    bare_conf.write_text(f"worker_class = {bare_class!r}\nthreads = 1\nkeepalive = 30\nreuse_port = {reuse == 'true'}\n"
                         "def post_worker_init(worker):  # load every model before serving, as the portal does\n"
                         "    import serving\n    serving._bare_models()\n")
    bare_env = base_env(url, tmp, BENCH_BARE_MODELS=str(tmp / "bare_models.json"))
    bare = Gunicorn(bare_env, workers=args.workers, app="serving:bare_app", log=tmp / f"bare-{wclass}-{rnd}.log",
                    conf=str(bare_conf), extra=[*common, "--chdir", str(ROOT / "bench")])
    return portal, bare


def verdict(*, answered: int, logged: int, slack: int, failures: list[str]) -> int:
    """The run's exit code: 1 on any error answer or a log that misses an answered prediction."""
    print(f"answered predictions {answered}, logged {logged} (at most {slack} answered in flight when a phase "
          "stopped may be logged but not counted)")
    if not answered <= logged <= answered + slack:
        failures.append(f"logged {logged} is not within [answered {answered}, answered + in-flight {answered + slack}]")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("OK: no error answers; every answered prediction is in the log")
    return 0

def main() -> int:  # noqa: C901 - one linear script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s phases, 1 round, sync, 8 connections, 1 and 50 models")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds per phase (one side, one round)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-classes", default="sync,gthread")
    ap.add_argument("--connections", default="1,8,64")
    ap.add_argument("--models", default="1,50", help="deployed models the load goes round-robin over")
    ap.add_argument("--kind", default="logreg", choices=["logreg", "hgb"])
    ap.add_argument("--client", default="auto", choices=["auto", "wrk", "python"])
    ap.add_argument("--onnx", action="store_true", help="let the portal serve the verified ONNX form")
    ap.add_argument("--no-access-log", action="store_true", help="SERVING_ACCESS_LOG=false (errors are still logged)")
    ap.add_argument("--reuse-port", action="store_true", help="gthread with SO_REUSEPORT on both sides (the kernel "
                    "hashes connections over the workers) instead of the portal's balanced gthread worker")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.worker_classes, args.connections = 3.0, 1, "sync", "8"
    classes = args.worker_classes.split(",")
    conns = [int(c) for c in args.connections.split(",")]
    model_counts = [int(m) for m in args.models.split(",")]
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if client == "wrk" and not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)")
        return 2

    sys.path.insert(0, str(ROOT))
    import psycopg

    from tests.deployments.stack import PY, base_env

    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        print("Set DATABASE_URL=postgres://… (the benchmark runs the portal against PostgreSQL)")
        return 2
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    name = f"slipway_bench_{uuid.uuid4().hex[:8]}"
    url = base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    tmp = Path(tempfile.mkdtemp(prefix="slipway-bench-"))
    servers: list = []
    failures: list[str] = []
    try:
        n_models = max(model_counts)
        env = base_env(url, tmp, BENCH_ONNX="1" if args.onnx else "0", BENCH_MODELS=n_models, BENCH_KIND=args.kind)
        print(f"preparing database {name} with {n_models} deployed models ({args.kind}) …", flush=True)
        out = subprocess.run([PY, "-c", SETUP], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        if out.returncode:
            print(out.stderr[-3000:])
            return 1
        info = json.loads([x for x in out.stdout.splitlines() if x.startswith("BENCH")][-1][5:])
        (tmp / "bare_models.json").write_text(json.dumps({k: [v["path"], v["names"]] for k, v in info.items()}))
        slugs_all = sorted(info)
        print(f"client: {client}; {args.workers} workers per server; {args.rounds} interleaved rounds of "
              f"{args.seconds:.0f} s per side and cell\n", flush=True)
        answered, slack = 0, 0
        rows = []
        for wclass in classes:
            # Fresh servers every round: a process's memory layout (hash seed, addresses) shifts its speed by a few
            # per cent for its whole life, so keeping one pair of servers for all rounds would bias every round alike.
            res = {(m, c): {k: {"p50": [], "p99": [], "rps": [], "cpu": [], "parts": [], "errors": {}}
                            for k in ("portal", "bare")} for m in model_counts for c in conns}
            for rnd in range(args.rounds):
                portal, bare = _start_servers(args, wclass, url, tmp, rnd)
                servers.extend([portal, bare])
                meters = {"portal": CpuMeter(portal.proc.pid, admin_url, name), "bare": CpuMeter(bare.proc.pid)}
                for m in model_counts:
                    slugs = slugs_all[:m]
                    sides = {"portal": (portal.port, _targets(info, slugs, True)),
                             "bare": (bare.port, _targets(info, slugs, False))}
                    scripts = {k: wrk_script(tmp / f"{k}-{m}.lua", t) for k, (_, t) in sides.items()}
                    for label, (port, targets) in sides.items():  # warm-up: every model once per worker, and more
                        r = run_python(port, targets, 2, 1.0)
                        if label == "portal":
                            answered += r["ok"]
                            slack += 2
                    for c in conns:
                        for label, (port, targets) in sides.items():
                            before = meters[label].sample()
                            if client == "wrk":
                                r = run_wrk(port, scripts[label], c, args.seconds)
                            else:
                                r = run_python(port, targets, c, args.seconds)
                            cpu = CpuMeter.seconds(before, meters[label].sample())
                            rr = res[(m, c)][label]
                            rr["p50"].append(r["p50"])
                            rr["p99"].append(r["p99"])
                            rr["rps"].append(r["ok"] / r["elapsed"])
                            rr["cpu"].append(1000 * cpu["total"] / max(1, r["ok"]))
                            rr["parts"].append({k: 1000 * v / max(1, r["ok"]) for k, v in cpu.items()})
                            for k, v in r["errors"].items():
                                rr["errors"][k] = rr["errors"].get(k, 0) + v
                            if label == "portal":
                                answered += r["ok"]
                                slack += c
                portal.stop()
                bare.stop()
            for m in model_counts:
                for c in conns:
                    cell = res[(m, c)]
                    for label, rr in cell.items():
                        if rr["errors"]:
                            failures.append(f"{wclass} {m} models {c} conns {label}: errors {rr['errors']}")
                    p, b = cell["portal"], cell["bare"]
                    ratios = {
                        "p50": [x / y for x, y in zip(p["p50"], b["p50"], strict=True)],
                        "rps": [x / y for x, y in zip(p["rps"], b["rps"], strict=True)],
                        "cpu": [x / y for x, y in zip(p["cpu"], b["cpu"], strict=True)],
                    }
                    med = {k: {f: statistics.median(v[f]) for f in ("p50", "p99", "rps", "cpu")} for k, v in cell.items()}
                    parts = {k: statistics.median(x[k] for x in p["parts"]) for k in ("workers", "drainer", "db", "kernel")}
                    bare_kernel = statistics.median(x["kernel"] for x in b["parts"])
                    rows.append((wclass, m, c, med, ratios))
                    print(f"{wclass:7s} {m:3d} models {c:3d} conns | portal p50 {med['portal']['p50']:6.2f} ms "
                          f"{med['portal']['rps']:6.0f}/s cpu {med['portal']['cpu']:.3f} ms/req | bare p50 "
                          f"{med['bare']['p50']:6.2f} ms {med['bare']['rps']:6.0f}/s cpu {med['bare']['cpu']:.3f} "
                          f"ms/req | ratios p50 {_fmt_range(ratios['p50'])} rps {_fmt_range(ratios['rps'])} "
                          f"cpu {_fmt_range(ratios['cpu'])} | portal CPU ms/req: workers {parts['workers']:.3f} "
                          f"drainer {parts['drainer']:.3f} PostgreSQL {parts['db']:.3f} | in the kernel (server "
                          f"processes): portal {parts['kernel']:.3f} bare {bare_kernel:.3f}", flush=True)

        deadline = time.monotonic() + 180
        logged = -1
        ids = [v["deployment"] for v in info.values()]
        while time.monotonic() < deadline:
            with psycopg.connect(url) as conn:
                logged = conn.execute("SELECT count(*) FROM deployments_predictionlog WHERE deployment_id = ANY(%s)",
                                      (ids,)).fetchone()[0]
            if logged >= answered:
                break
            time.sleep(1)
        print()
        print("| workers | models | conns | p50 portal / bare (ms) | p50 ratio | req/s portal / bare | throughput ratio "
              "| CPU ms/req portal / bare | CPU ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for wclass, m, c, med, ratios in rows:
            p, b = med["portal"], med["bare"]
            print(f"| {wclass} | {m} | {c} | {p['p50']:.2f} / {b['p50']:.2f} | {_fmt_range(ratios['p50'])} | "
                  f"{p['rps']:,.0f} / {b['rps']:,.0f} | {_fmt_range(ratios['rps'])} | {p['cpu']:.3f} / {b['cpu']:.3f} "
                  f"| {_fmt_range(ratios['cpu'])} |")
        print(f"\nclient {client}; ratios are medians over {args.rounds} rounds (min–max); goals: p50 ≤ 1.3, "
              "throughput ≥ 0.8, CPU ≤ 1.3")
        return verdict(answered=answered, logged=logged, slack=slack, failures=failures)
    finally:
        for s in servers:
            s.stop()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

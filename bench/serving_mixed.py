"""Benchmark: serving a mixed-type pipeline (text + numbers) vs a bare WSGI endpoint calling the same pipeline.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/slipway_x .venv/bin/python bench/serving_mixed.py
    ... bench/serving_mixed.py --requests 2000 --seconds 10 --workers 2 --worker-class gthread [--onnx]

Creates a throwaway database next to DATABASE_URL's (dropped at the end) with one READY version of the
pipeline a data scientist brings first — ColumnTransformer([OneHotEncoder on "country" and "plan",
StandardScaler on "Monthly Spend ($)" and "tenure months"]) → LogisticRegression, with its inferred typed
contract — deploys it, and starts two gunicorn servers with the same worker class and count:

- the portal (``portal.wsgi``: API-key auth, strict typed validation building the typed DataFrame, spooled
  prediction log drained into PostgreSQL, metrics, access log);
- a bare WSGI app that parses the JSON, builds a one-row pandas DataFrame (as a notebook would) and calls
  the same pipeline's ``predict_proba`` (the same skops bytes) — no framework, no auth, no log.

Both are measured by the same asyncio keep-alive client (interleaved rounds): sequential single-row
p50/p99, then throughput at 8 and 64 connections. Goals: p50 ≤ 1.5×, throughput ≥ 0.7×; with ``--onnx``
the portal serves the registry's verified ONNX form (string tensors) and should beat the bare scikit-learn
endpoint. At the end every answered prediction must be in the log. (``bench/serving.py`` is the numeric,
many-deployment benchmark with wrk.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
N_FEATURES = 20


# --- the bare endpoint (imported by gunicorn as ``serving_mixed:bare_app`` with --chdir bench) -----------

_BARE: dict = {}


def _bare_models() -> dict:
    if not _BARE:
        import skops.io as sio

        sys.path.insert(0, str(ROOT))
        from apps.registry.allowlist import skops_trusted_types

        for slug, (path, names, mixed) in json.loads(os.environ["BENCH_BARE_MODELS"]).items():
            est = sio.loads(Path(path).read_bytes(), trusted=skops_trusted_types())
            _BARE[slug] = (est, names, [str(c) for c in est.classes_], mixed)
    return _BARE


def bare_app(environ, start_response):
    import numpy as np

    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    slug = environ["PATH_INFO"].split("/")[4]
    est, names, classes, mixed = _bare_models()[slug]
    body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    if mixed:  # the pipeline with text columns: a DataFrame, as in a notebook
        import pandas as pd

        X = pd.DataFrame(body["instances"], columns=names)
    else:
        X = np.array([[row[n] for n in names] for row in body["instances"]], dtype=float)
    proba = est.predict_proba(X)
    labels = est.classes_[proba.argmax(axis=1)]
    out = json.dumps({"predictions": [{"prediction": lab.item() if hasattr(lab, "item") else lab, "probabilities": dict(zip(classes, p.tolist(), strict=True))}
                                      for lab, p in zip(labels, proba, strict=True)]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


# --- the client ---------------------------------------------------------------------------------


def _request(port: int, path: str, key: str | None, payload: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n")
    if key:
        head += f"Authorization: Bearer {key}\r\n"
    return head.encode() + b"\r\n" + payload


async def _conn_loop(port: int, raw: bytes, stop_at: float, counts: dict, latencies: list | None, limit: int | None):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while time.perf_counter() < stop_at and (limit is None or n < limit):
            t0 = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            i = lower.find(b"content-length:")
            length = int(lower[i + 15:lower.find(b"\r\n", i)])
            await reader.readexactly(length)
            if latencies is not None:
                latencies.append(time.perf_counter() - t0)
            counts[status] = counts.get(status, 0) + 1
            n += 1
            if b"connection: close" in lower:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def _merge(into: dict, counts: dict) -> None:
    for k, v in counts.items():
        into[k] = into.get(k, 0) + v


def sequential(port: int, raw: bytes, n: int, keep: bool = False) -> dict:
    latencies: list[float] = []
    counts: dict = {}
    asyncio.run(_conn_loop(port, raw, time.perf_counter() + 3600, counts, latencies, n))
    return {"latencies": latencies, "counts": counts}


def throughput(port: int, raw: bytes, connections: int, seconds: float) -> dict:
    counts: dict = {}

    async def main():
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*[_conn_loop(port, raw, stop_at, counts, None, None) for _ in range(connections)])

    t0 = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - t0
    return {"rps": counts.get(200, 0) / elapsed, "counts": counts, "elapsed": elapsed}


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
from tests.deployments.factories import deploy
owner = get_user_model().objects.create_user(username="bench", password="x")
project = project_create(actor=owner, name="Bench", slug="bench")
onnx = os.environ["BENCH_ONNX"] == "1"
out = {}
from tests.deployments.factories import make_ready_mixed_version
v = make_ready_mixed_version(project=project, actor=owner, name="bench-mixed", onnx=onnx)
dep, key = deploy(project=project, actor=owner, version=v, slug="bench-mixed", max_batch=1000)
out["bench-mixed"] = {"key": key, "deployment": dep.pk, "path": str(artifact_store().path(v.safe_artifact_key)),
                      "names": v.model.feature_names, "mixed": True}
print("BENCH" + json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="500 sequential requests, 5 s per throughput phase")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--slice", type=float, default=2.0, help="seconds per alternating throughput slice")
    ap.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"],
                    help="gthread (1 thread) keeps connections alive; sync closes after every response")
    ap.add_argument("--onnx", action="store_true", help="let the portal serve the verified ONNX form")
    ap.add_argument("--models", default="bench-mixed")
    ap.add_argument("--no-access-log", action="store_true", help="SERVING_ACCESS_LOG=false (errors are still logged)")
    ap.add_argument("--drain-in-workers", action="store_true",
                    help="drain the log from a thread in each web worker (GUNICORN_DRAINER=false) instead of the "
                         "drainer process gunicorn starts by default")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.seconds = 500, 5.0

    sys.path.insert(0, str(ROOT))
    import subprocess
    import tempfile

    import psycopg

    from tests.deployments.stack import PY, Gunicorn, base_env

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
    servers = []
    try:
        env = base_env(url, tmp, BENCH_ONNX="1" if args.onnx else "0")
        print(f"preparing database {name} …", flush=True)
        out = subprocess.run([PY, "-c", SETUP], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if out.returncode:
            print(out.stderr[-3000:])
            return 1
        info = json.loads([x for x in out.stdout.splitlines() if x.startswith("BENCH")][-1][5:])
        common = ["--worker-connections", "1000"]
        portal_env = base_env(url, tmp, GUNICORN_WORKER_CLASS=args.worker_class,
                              SERVING_ACCESS_LOG="false" if args.no_access_log else "true", LOG_LEVEL="INFO",
                              GUNICORN_DRAINER="false" if args.drain_in_workers else "true",
                              SERVING_DRAIN_IN_PROCESS="true" if args.drain_in_workers else "false")
        portal = Gunicorn(portal_env, workers=args.workers, log=tmp / "portal.log", extra=common)
        servers.append(portal)
        bare_env = base_env(url, tmp, BENCH_BARE_MODELS=json.dumps({k: [v["path"], v["names"], v["mixed"]]
                                                                    for k, v in info.items()}))
        bare_conf = tmp / "bare_gunicorn.py"  # same worker settings as the portal, no portal hooks
        bare_conf.write_text(f"worker_class = {args.worker_class!r}\nthreads = 1\nkeepalive = 30\n")
        bare = Gunicorn(bare_env, workers=args.workers, app="serving_mixed:bare_app", log=tmp / "bare.log",
                        conf=str(bare_conf), extra=[*common, "--chdir", str(ROOT / "bench")])
        servers.append(bare)
        answered = 0
        rows = []
        for slug in args.models.split(","):
            if info[slug]["mixed"]:
                instance = {"country": "FR", "Monthly Spend ($)": 42.5, "plan": "pro", "tenure months": 14}
            else:
                instance = {n: 0.1 * (i + 1) for i, n in enumerate(info[slug]["names"])}
            payload = json.dumps({"instances": [instance]}).encode()
            path = f"/api/v1/deployments/{slug}/predict"
            raw_portal = _request(portal.port, path, info[slug]["key"], payload)
            raw_bare = _request(bare.port, path, None, payload)
            for raw, port in ((raw_portal, portal.port), (raw_bare, bare.port)):  # warm-up
                sequential(port, raw, 50)
            answered += 50  # the portal's warm-up answers are logged too
            # Interleaved in short rounds (portal, bare, portal, ...) so that background load on the
            # machine hits both sides alike.
            sides = {"portal": (raw_portal, portal.port), "bare": (raw_bare, bare.port)}
            res = {k: {"lat": [], "seq_counts": {}, 8: [0, 0.0, {}], 64: [0, 0.0, {}]} for k in sides}
            rounds = max(1, args.requests // 100)
            for _ in range(rounds):
                for label, (raw, port) in sides.items():
                    seq = sequential(port, raw, 100, keep=True)
                    res[label]["lat"].extend(seq["latencies"])
                    _merge(res[label]["seq_counts"], seq["counts"])
            for conns in (8, 64):
                slices = max(1, int(round(args.seconds / args.slice)))
                for _ in range(slices):
                    for label, (raw, port) in sides.items():
                        t = throughput(port, raw, conns, args.seconds / slices)
                        res[label][conns][0] += t["counts"].get(200, 0)
                        res[label][conns][1] += t["elapsed"]
                        _merge(res[label][conns][2], t["counts"])
            for label, r in res.items():
                lat = sorted(r["lat"])
                r["p50"], r["p99"] = 1000 * lat[len(lat) // 2], 1000 * lat[int(len(lat) * 0.99)]
                r["rps8"], r["rps64"] = r[8][0] / r[8][1], r[64][0] / r[64][1]
                for counts in (r["seq_counts"], r[8][2], r[64][2]):
                    bad = {k: v for k, v in counts.items() if k != 200}
                    if bad:
                        print(f"  {label} {slug}: non-200 answers {bad}")
                if label == "portal":
                    answered += sum(c.get(200, 0) for c in (r["seq_counts"], r[8][2], r[64][2]))
                print(f"{slug:10s} {label:6s} p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  "
                      f"8 conns {r['rps8']:7.0f}/s  64 conns {r['rps64']:7.0f}/s   ({len(lat)} sequential requests)",
                      flush=True)
            p, b = res["portal"], res["bare"]
            rows.append((slug, p["p50"] / b["p50"], p["rps8"] / b["rps8"], p["rps64"] / b["rps64"]))

        deadline = time.monotonic() + 120
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
        print(f"{'model':10s} {'p50 ratio':>10s} {'rps ratio @8':>13s} {'rps ratio @64':>14s}   (goals: ≤1.5, ≥0.7)")
        for slug, r50, r8, r64 in rows:
            print(f"{slug:10s} {r50:10.2f} {r8:13.2f} {r64:14.2f}")
        print(f"\nanswered predictions {answered}, logged {logged}")
        assert logged == answered, f"logged {logged} != answered {answered}"
        print("OK: every answered prediction is in the log")
        return 0
    finally:
        for s in servers:
            s.stop()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())

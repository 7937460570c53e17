"""Benchmark: serving a mixed-type pipeline (text + numbers) vs a bare WSGI endpoint calling the same pipeline.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/slipway_x .venv/bin/python bench/serving_mixed.py
    ... bench/serving_mixed.py --quick | --seconds 8 --rounds 3 --workers 2 --worker-class gthread [--onnx]

Creates a throwaway database next to DATABASE_URL's (dropped at the end) with one READY version of the
pipeline a data scientist brings first — ColumnTransformer([OneHotEncoder on "country" and "plan",
StandardScaler on "Monthly Spend ($)" and "tenure months"]) → LogisticRegression, with its inferred typed
contract — deploys it, and starts two gunicorn servers with the same worker class and count:

- the portal (``portal.wsgi``: API-key auth, strict typed validation building the typed DataFrame, spooled
  prediction log drained into PostgreSQL, metrics, access log);
- a bare WSGI app that parses the JSON, builds a one-row pandas DataFrame (as a notebook would) and calls
  the same pipeline's ``predict_proba`` (the same skops bytes) — no framework, no auth, no log.

Both are measured by ``bench/serving.py``'s load helpers (imported, one copy): ``wrk`` when installed, else
its asyncio client, in interleaved rounds at 1, 8 and 64 connections, with server CPU per request from
/proc; error answers are reported apart and fail the run. Goals: p50 ≤ 1.5×, throughput ≥ 0.7×; with ``--onnx``
the portal serves the registry's verified ONNX form (string tensors) and should beat the bare scikit-learn
endpoint. At the end every answered prediction must be in the log. (``bench/serving.py`` is the numeric,
many-deployment benchmark with wrk.)
"""

from __future__ import annotations

import argparse
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


# --- the client: bench/serving.py's (wrk when installed, else its asyncio client; server CPU from /proc) ---

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import CpuMeter, run_python, run_wrk, verdict, wrk_script  # noqa: E402 - one copy of the load helpers

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


def main() -> int:  # noqa: C901 - one linear script
    import shutil
    import statistics

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s phases, 1 round")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds per phase (one side, one round)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"],
                    help="gthread (1 thread) keeps connections alive; sync closes after every response")
    ap.add_argument("--connections", default="1,8,64")
    ap.add_argument("--client", default="auto", choices=["auto", "wrk", "python"])
    ap.add_argument("--onnx", action="store_true", help="let the portal serve the verified ONNX form")
    ap.add_argument("--no-access-log", action="store_true", help="SERVING_ACCESS_LOG=false (errors are still logged)")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rounds = 3.0, 1
    conns = [int(c) for c in args.connections.split(",")]
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if client == "wrk" and not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)")
        return 2

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
    failures: list[str] = []
    try:
        env = base_env(url, tmp, BENCH_ONNX="1" if args.onnx else "0")
        print(f"preparing database {name} …", flush=True)
        out = subprocess.run([PY, "-c", SETUP], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if out.returncode:
            print(out.stderr[-3000:])
            return 1
        info = json.loads([x for x in out.stdout.splitlines() if x.startswith("BENCH")][-1][5:])
        reuse = "true" if args.worker_class == "gthread" else "false"
        common = ["--worker-connections", "1000"]
        portal_env = base_env(url, tmp, GUNICORN_WORKER_CLASS=args.worker_class, GUNICORN_REUSE_PORT=reuse,
                              SERVING_ACCESS_LOG="false" if args.no_access_log else "true", LOG_LEVEL="INFO")
        portal = Gunicorn(portal_env, workers=args.workers, log=tmp / "portal.log", extra=common)
        servers.append(portal)
        bare_env = base_env(url, tmp, BENCH_BARE_MODELS=json.dumps({k: [v["path"], v["names"], v["mixed"]]
                                                                    for k, v in info.items()}))
        bare_conf = tmp / "bare_gunicorn.py"  # same worker settings as the portal, no portal hooks
        bare_conf.write_text(f"worker_class = {args.worker_class!r}\nthreads = 1\nkeepalive = 30\n"
                             f"reuse_port = {reuse == 'true'}\n")
        bare = Gunicorn(bare_env, workers=args.workers, app="serving_mixed:bare_app", log=tmp / "bare.log",
                        conf=str(bare_conf), extra=[*common, "--chdir", str(ROOT / "bench")])
        servers.append(bare)
        meters = {"portal": CpuMeter(portal.proc.pid, admin_url, name), "bare": CpuMeter(bare.proc.pid)}
        instance = {"country": "FR", "Monthly Spend ($)": 42.5, "plan": "pro", "tenure months": 14}
        body = json.dumps({"instances": [instance]}).encode()
        path = "/api/v1/deployments/bench-mixed/predict"
        targets = {"portal": [{"path": path, "body": body, "headers": {
                       "Content-Type": "application/json", "Authorization": f"Bearer {info['bench-mixed']['key']}"}}],
                   "bare": [{"path": path, "body": body, "headers": {"Content-Type": "application/json"}}]}
        ports = {"portal": portal.port, "bare": bare.port}
        scripts = {k: wrk_script(tmp / f"{k}.lua", t) for k, t in targets.items()}
        answered, slack = 0, 0
        for label in ports:  # warm-up
            r = run_python(ports[label], targets[label], 2, 1.0)
            if label == "portal":
                answered, slack = answered + r["ok"], slack + 2
        print(f"client: {client}; {args.workers} {args.worker_class} workers per server; {args.rounds} interleaved "
              f"rounds of {args.seconds:.0f} s per side and cell\n", flush=True)
        rows = []
        for c in conns:
            res = {k: {"p50": [], "rps": [], "cpu": [], "errors": {}} for k in ports}
            for _ in range(args.rounds):  # interleaved: background load hits both sides alike
                for label, port in ports.items():
                    before = meters[label].sample()
                    r = (run_wrk(port, scripts[label], c, args.seconds) if client == "wrk"
                         else run_python(port, targets[label], c, args.seconds))
                    cpu = CpuMeter.seconds(before, meters[label].sample())
                    res[label]["p50"].append(r["p50"])
                    res[label]["rps"].append(r["ok"] / r["elapsed"])
                    res[label]["cpu"].append(1000 * cpu["total"] / max(1, r["ok"]))
                    for k, v in r["errors"].items():
                        res[label]["errors"][k] = res[label]["errors"].get(k, 0) + v
                    if label == "portal":
                        answered, slack = answered + r["ok"], slack + c
            for label, rr in res.items():
                if rr["errors"]:
                    failures.append(f"{c} conns {label}: errors {rr['errors']}")
            med = {k: {f: statistics.median(v[f]) for f in ("p50", "rps", "cpu")} for k, v in res.items()}
            ratios = {f: statistics.median(x / y for x, y in zip(res["portal"][f], res["bare"][f], strict=True))
                      for f in ("p50", "rps", "cpu")}
            rows.append((c, med, ratios))
            print(f"{c:3d} conns | portal p50 {med['portal']['p50']:6.2f} ms {med['portal']['rps']:6.0f}/s cpu "
                  f"{med['portal']['cpu']:.3f} ms/req | bare p50 {med['bare']['p50']:6.2f} ms {med['bare']['rps']:6.0f}/s "
                  f"cpu {med['bare']['cpu']:.3f} ms/req", flush=True)

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
        print(f"{'conns':>5s} {'p50 ratio':>10s} {'rps ratio':>10s} {'CPU ratio':>10s}   (goals: ≤1.5, ≥0.7; medians "
              f"over {args.rounds} rounds, client {client})")
        for c, _, ratios in rows:
            print(f"{c:5d} {ratios['p50']:10.2f} {ratios['rps']:10.2f} {ratios['cpu']:10.2f}")
        print()
        return verdict(answered=answered, logged=logged, slack=slack, failures=failures)
    finally:
        for s in servers:
            s.stop()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: shadowing adds nothing to the production latency path; shadow scoring and comparison speed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/slipway_promotion .venv/bin/python bench/shadow.py
    ... bench/shadow.py --seconds 10 --connections 8

Creates a throwaway database next to DATABASE_URL's (dropped at the end) with the serving test stack
(tests/deployments/stack.py: two READY versions, a live deployment, an API key), starts the portal
under gunicorn and measures the predict endpoint with ``--connections`` keep-alive connections:

1. without a shadow run;
2. with a shadow run of the second version active and a scorer process (niced, as a Celery worker on
   the same box would best be) scoring the newly logged traffic every 2 s (``shadow_run_score_pending``,
   what the beat tick runs) against the same database — interleaved in slices so both phases see the
   same machine state.

Ratios: p50/p99 latency and throughput with shadow / without (goal: ~1.0). Then the scorer's rows/s,
and the comparison (``shadow_stats.compare`` on 50,000 pairs with 1,000 bootstrap resamples) against
the textbook floor: scipy's binomial test plus a bootstrap that re-ranks every resample with
``scipy.stats.rankdata``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCORER = """
import os, time, django
django.setup()
from apps.releases.services import shadow
run_id = int(os.environ["RUN_ID"])
total, started = 0, time.monotonic()
while not os.path.exists(os.environ["STOP_FILE"]):  # like the beat tick, every TICK seconds
    tick = time.monotonic()
    total += shadow.shadow_run_score_pending(run_id=run_id)
    time.sleep(max(0.0, float(os.environ.get("TICK", "2")) - (time.monotonic() - tick)))
print("SCORED", total, time.monotonic() - started)
"""

START = """
import django; django.setup()
from django.contrib.auth import get_user_model
from apps.deployments.models import Deployment
from apps.releases.services import shadow
from apps.registry.models import ModelVersion
d = Deployment.objects.get(pk={dep})
run = shadow.shadow_run_start(deployment=d, actor=get_user_model().objects.get(username="owner"),
                              candidate=ModelVersion.objects.get(pk={v2}), backfill_hours=0)
print("RUN", run.pk)
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def phase(stack, seconds: float, connections: int) -> dict:
    from tests.deployments.stack import LoadClient

    payload = json.dumps({"instances": [{f"f{i}": 0.1 * i for i in range(4)}]}).encode()
    client = LoadClient(stack["server"].port, stack["slug"], stack["key"], payload, connections=connections).start()
    time.sleep(seconds)
    stats = client.stop()
    lat = [r.latency * 1000 for r in stats.ok]
    return {"requests": len(stats.results), "ok": len(stats.ok), "rps": len(stats.ok) / seconds,
            "p50": pct(lat, 0.5), "p99": pct(lat, 0.99)}


def merge(parts: list[dict]) -> dict:
    return {"requests": sum(p["requests"] for p in parts), "ok": sum(p["ok"] for p in parts),
            "rps": statistics.mean(p["rps"] for p in parts), "p50": statistics.median(p["p50"] for p in parts),
            "p99": statistics.median(p["p99"] for p in parts)}


def bench_compare(n: int = 50_000, n_boot: int = 1000) -> dict:
    import numpy as np
    from scipy import stats as sps

    from apps.releases import shadow_stats as S

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    a = 1 / (1 + np.exp(-(0.5 * (2 * y - 1) + rng.normal(size=n))))
    b = 1 / (1 + np.exp(-(1.0 * (2 * y - 1) + rng.normal(size=n))))
    t = time.perf_counter()
    res = S.compare(task="binary_classification", production_output=(a > .5).astype(int),
                    candidate_output=(b > .5).astype(int), production_score=a, candidate_score=b, y_true=y,
                    labelled_mask=np.ones(n, bool), classes=[0, 1], positive=1, n_boot=n_boot, seed=0)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    pc, cc = (a > .5) == y, (b > .5) == y
    sps.binomtest(int(np.sum(pc & ~cc)), int(np.sum(pc ^ cc)), 0.5)
    idx = rng.integers(0, n, size=(n_boot, n))
    ranks_b = sps.rankdata(b[idx], axis=1)
    ranks_a = sps.rankdata(a[idx], axis=1)
    yy = y[idx].astype(bool)
    npos = yy.sum(1)
    _ = (((ranks_b * yy).sum(1) - (ranks_a * yy).sum(1)) / (npos * (n - npos)))
    floor = time.perf_counter() - t
    return {"n": n, "n_boot": n_boot, "ours_s": ours, "floor_s": floor, "ratio": ours / floor,
            "verdict": res.verdict.status}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=12.0, help="seconds per condition (in 3 slices)")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()
    import tempfile

    from tests.deployments.stack import PY, Gunicorn, base_env, prepare_database
    from tests.deployments.test_load import _db_url

    tmp = Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    url, drop = _db_url(tmp)
    scorer = server = None
    try:
        info = prepare_database(url, tmp)
        env = base_env(url, tmp)
        server = Gunicorn(env, workers=args.workers, log=tmp / "gunicorn.log")
        stack = {**info, "server": server}
        phase(stack, 2, args.connections)  # warm-up
        slice_s = args.seconds / 3
        without = [phase(stack, slice_s, args.connections) for _ in range(3)]  # no shadow run exists
        out = subprocess.run([PY, "-c", START.format(dep=info["deployment"], v2=info["versions"][1])], cwd=ROOT,
                             env=env, capture_output=True, text=True, check=True)
        run_id = int(out.stdout.split("RUN")[-1].strip())
        stop_file = tmp / "stop-scorer"
        idle, with_shadow, scored_line = [], [], ""
        for _ in range(3):
            idle.append(phase(stack, slice_s, args.connections))  # shadow run active, its scorer not running now
            stop_file.unlink(missing_ok=True)
            # niced: Celery workers run on their own cores/hosts in production; here they share the box
            scorer = subprocess.Popen(["nice", "-n", "19", PY, "-c", SCORER], cwd=ROOT, text=True,
                                      stdout=subprocess.PIPE,
                                      env={**env, "RUN_ID": str(run_id), "STOP_FILE": str(stop_file)})
            with_shadow.append(phase(stack, slice_s, args.connections))
            stop_file.touch()
            scored_line = scorer.communicate(timeout=120)[0]
            scorer = None
        a, i, b = merge(without), merge(idle), merge(with_shadow)
        scored = [x for x in scored_line.split() if x.replace(".", "").isdigit()]
        print(f"predict endpoint, {args.connections} connections, {args.workers} gunicorn workers, {os.cpu_count()} CPUs")
        for label, m in (("no shadow run", a), ("shadow run active", i), ("active + scorer busy", b)):
            print(f"  {label:22s} {m['rps']:8.0f} req/s  p50 {m['p50']:6.2f} ms  p99 {m['p99']:6.2f} ms  "
                  f"({m['ok']} ok of {m['requests']})")
        print(f"  ratio active/none: throughput {i['rps'] / a['rps']:.2f}  p50 {i['p50'] / a['p50']:.2f}  "
              f"p99 {i['p99'] / a['p99']:.2f}")
        print(f"  ratio scorer busy on the same box/none: throughput {b['rps'] / a['rps']:.2f}  "
              f"p50 {b['p50'] / a['p50']:.2f}  p99 {b['p99'] / a['p99']:.2f}")
        if len(scored) >= 2:
            print(f"  scorer (last slice): {int(scored[0]):,} rows in {float(scored[1]):.1f} s")
        c = bench_compare()
        print(f"comparison of {c['n']:,} pairs, {c['n_boot']} bootstrap resamples: {c['ours_s']:.2f} s "
              f"(floor: inline scipy/numpy {c['floor_s']:.2f} s, ratio {c['ratio']:.2f}); verdict {c['verdict']}")
        return 0
    finally:
        if scorer is not None:
            scorer.kill()
        if server is not None:
            server.stop()
        drop()


if __name__ == "__main__":
    sys.exit(main())

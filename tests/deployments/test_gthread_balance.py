"""The portal's gthread worker spreads keep-alive connections evenly over the workers, in every burst.

gunicorn's own gthread lets a burst of connections land mostly on one worker (a keep-alive client then
stays there); ``BalancedThreadWorker`` accepts only while no other worker holds fewer connections. Real
gunicorn, real sockets; the app answers with its worker's pid, so each connection's worker is known."""

import http.client
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from .stack import GUNICORN, ROOT, free_port

APP = "tests.deployments.test_gthread_balance:app"


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _start(port: int, workers: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([GUNICORN, "-w", str(workers), "-k", "apps.deployments.gunicorn_workers.BalancedThreadWorker",
                             "--threads", "1", "--keep-alive", "30", "-b", f"127.0.0.1:{port}", *extra, APP],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(_workers(proc.pid)) == workers:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                time.sleep(0.3)  # the worker sees the closed connection and counts it out
                return proc
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gunicorn did not start")


def _workers(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _burst(port: int, n: int) -> tuple[list[http.client.HTTPConnection], Counter]:
    """Open ``n`` keep-alive connections at once, send one request on each; {worker pid: connections}."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(n)]
    for c in conns:
        c.connect()
    for c in conns:
        c.request("GET", "/")
    pids = Counter()
    for c in conns:
        resp = c.getresponse()
        pids[int(resp.read())] += 1
    return conns, pids


@pytest.mark.skipif(sys.platform != "linux", reason="gunicorn + /proc")
def test_every_burst_of_keep_alive_connections_is_spread_evenly_also_after_a_worker_is_killed():
    port = free_port()
    proc = _start(port, 2)
    try:
        for n in (8, 8, 8, 64):
            conns, pids = _burst(port, n)
            assert len(pids) == 2 and max(pids.values()) - min(pids.values()) <= 1, (n, pids)
            # the connections stay with their worker (keep-alive): a second request on each is answered by it
            for c in conns[:4]:
                c.request("GET", "/")
                assert int(c.getresponse().read()) in pids
            for c in conns:
                c.close()
            time.sleep(0.3)
        victim = _workers(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)  # its slot is freed; the new worker takes part in the balance
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (victim in _workers(proc.pid) or len(_workers(proc.pid)) < 2):
            time.sleep(0.1)
        time.sleep(1.0)
        conns, pids = _burst(port, 8)
        assert victim not in pids and len(pids) == 2 and max(pids.values()) - min(pids.values()) <= 1, pids
        for c in conns:
            c.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

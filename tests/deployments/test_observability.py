"""Observability never breaks serving, and a graceful stop is quick and clean (the real stack)."""

import json
import shutil
import signal
import time
from pathlib import Path

from .stack import Gunicorn, LoadClient, base_env, count_logged, http_get, prepare_database

PAYLOAD = json.dumps({"instances": [{f"f{i}": 0.1 * i for i in range(4)}]}).encode()


def test_lost_metrics_folder_never_drops_a_request_and_sigterm_stops_cleanly_within_5s(tmp_path):
    from .test_load import _db_url

    url, drop = _db_url(tmp_path)
    server = None
    try:
        info = prepare_database(url, tmp_path, onnx=True)  # onnxruntime in the workers, as in production
        env = base_env(url, tmp_path, SERVING_DRAIN_INTERVAL=5)  # the final drain at SIGTERM does the work
        server = Gunicorn(env, workers=2, log=tmp_path / "gunicorn.log")
        server.wait_drainer()
        shutil.rmtree(Path(env["PROMETHEUS_MULTIPROC_DIR"]))  # the failure: every metric write raises
        client = LoadClient(server.port, info["slug"], info["key"], PAYLOAD, connections=4).start()
        time.sleep(3)
        stats = client.stop()
        assert set(stats.statuses()) == {200}, stats.statuses()
        answered = stats.answered_ids()
        assert len(answered) > 50
        assert http_get(server.port, "/healthz")[0] == 200
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=30)
        took = time.monotonic() - started
        assert took <= 5.0 and code == 0, (took, code)
        log = (tmp_path / "gunicorn.log").read_text()
        assert "Observability failure (metrics" in log
        assert "terminate called" not in log and "Worker was sent" not in log and "SIGABRT" not in log, log[-3000:]
        # The drainer flushed the spool on SIGTERM: everything answered is in the log without another drain.
        assert count_logged(url, tmp_path, info["deployment"]) == answered
    finally:
        if server is not None:
            server.stop()
        drop()

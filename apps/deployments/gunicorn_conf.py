"""gunicorn settings for serving: ``gunicorn -c python:apps.deployments.gunicorn_conf portal.wsgi``.

Sync workers, one thread each (tree models must run single-threaded per process), the app and the
model libraries loaded once in the master before forking, each worker reading the whole serving state
and loading the live models before it accepts requests, and the Prometheus multi-process clean-up when
a worker exits.

Start-up fails loudly when ``PROMETHEUS_MULTIPROC_DIR`` cannot be created (it is created and emptied
here, before the app is loaded). A graceful stop (SIGTERM) takes well under ``graceful_timeout``
(``GUNICORN_GRACEFUL_TIMEOUT``, 5 s): each worker finishes its request, closes its spool segment and
leaves with ``os._exit`` — the C++ static destructors of onnxruntime, inherited from the master through
fork, otherwise hang (``pthread_cond_destroy``) or abort (``std::system_error``) at exit — and the
drainer makes one last pass over the spool.
"""

import os
import sys

from apps.deployments.metrics import ensure_multiproc_dir

ensure_multiproc_dir(wipe=True)  # raises (gunicorn does not start) when the folder cannot be made

# The prediction log is drained by one separate process per host (started in when_ready below), not by a
# thread in each worker: a drain holds the worker's GIL while it parses and copies thousands of records.
# GUNICORN_DRAINER=false leaves draining to the workers' threads (SERVING_DRAIN_IN_PROCESS) / Celery beat.
DRAINER = os.environ.get("GUNICORN_DRAINER", "true").lower() not in ("0", "false", "no", "off")
if DRAINER:
    os.environ["SERVING_DRAIN_IN_PROCESS"] = "false"  # read by the settings the app preload imports next
_drainer = None
_stopping = __import__("threading").Event()

worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
# gthread keeps connections alive, and a keep-alive client stays with the worker that accepted it: gunicorn's
# gthread lets a burst of new connections land mostly on one worker while the others idle. The portal's gthread
# (gunicorn_workers.BalancedThreadWorker) accepts only while no other worker holds fewer connections, so they
# spread evenly (8 → 4/4) in every burst. GUNICORN_REUSE_PORT=true gives each worker its own SO_REUSEPORT socket
# instead: the kernel hashes connections over them (4/4, 5/3 or 6/2 by chance; a worker that dies drops the
# connections queued on its socket), and the balance rule is off.
if worker_class == "gthread":
    worker_class = "apps.deployments.gunicorn_workers.BalancedThreadWorker"
threads = 1
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "5"))
reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "false").lower() in ("1", "true", "yes", "on")
preload_app = True
# Request limits (a client cannot make a worker buffer an endless request line or header block). The request
# line is capped at gunicorn's maximum, 8,190 bytes; the portal's own bound on path + query is lower
# (apps.common.api_edge.MAX_URL_BYTES, 8,000), so up to the cap the portal answers a JSON 414 for /api/ and a
# plain one for pages, and beyond it gunicorn answers 414 itself, before reading more — in the same JSON
# error shape (_json_protocol_errors below), as it does for malformed requests and oversized headers (431).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190


def _json_protocol_errors():
    """gunicorn writes its own protocol errors (400, 414, 431, ...) as an HTML page through
    ``gunicorn.util.write_error``; answer them as ``{"detail", "errors"}`` JSON like every API error."""
    import json

    from gunicorn import util

    def write_error(sock, status_int, reason, mesg):
        body = json.dumps({"detail": f"{reason}: {mesg}" if mesg else reason, "errors": []}).encode()
        head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin1")
        util.write_nonblock(sock, head + body)

    util.write_error = write_error


_json_protocol_errors()


def when_ready(server):  # master, after preloading the app, before the workers are forked
    import gc

    from apps.deployments.serving import warm_up_imports

    warm_up_imports()
    # Everything loaded so far lives as long as the server: keep it out of the garbage collector's
    # scans (cheaper full collections in every worker, and fewer copy-on-write page copies).
    gc.collect()
    gc.freeze()
    if DRAINER:
        import threading

        threading.Thread(target=_supervise_drainer, args=(server,), name="slipway-drainer-supervisor",
                         daemon=True).start()


def _supervise_drainer(server):
    """Master thread: keep one drainer process running; restart it within a second if it dies."""
    import subprocess
    import sys

    global _drainer
    while not _stopping.is_set():
        if _drainer is None or _drainer.poll() is not None:
            if _drainer is not None:
                server.log.warning("Prediction log drainer exited (code %s); restarting it", _drainer.returncode)
            _drainer = subprocess.Popen([sys.executable, "-m", "portal.entrypoint", "drain", str(os.getpid())])
            server.log.info("Prediction log drainer started (pid %s)", _drainer.pid)
        _stopping.wait(1.0)


def on_exit(server):  # master, at shutdown: the drainer makes a last pass over the spool and stops
    _stopping.set()
    if _drainer is not None and _drainer.poll() is None:
        _drainer.terminate()
        try:
            _drainer.wait(timeout=3.5)
        except Exception:  # noqa: BLE001 - database slow or down: the spool stays on disk for the next drainer
            _drainer.kill()


def worker_exit(server, worker):
    """In the worker (also called in the master for a worker that vanished): close this process's spool
    segment and its database connection, flush the logs, then leave without running C-level exit
    handlers (see the module docstring)."""
    if os.getpid() != worker.pid:
        return
    exc = sys.exc_info()[1]
    code = exc.code if isinstance(exc, SystemExit) else (0 if exc is None else 1)
    code = code if isinstance(code, int) else (0 if code is None else 1)
    try:
        from django.db import connections

        from apps.common.flusher import flush_all
        from apps.deployments.logpipe import flush_own_segment

        flush_all()  # batched metric updates and access lines
        flush_own_segment()
        connections.close_all()
    except Exception:  # noqa: BLE001 - leaving anyway; the spool is durable without the close
        server.log.exception("Worker clean-up at exit failed")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110
            pass
    os._exit(code)


def post_worker_init(worker):
    import gc

    from apps.deployments.serving import warm_up_models

    warm_up_models()
    gc.freeze()  # the models just loaded, likewise


def child_exit(server, worker):  # master, after a worker exited
    release = getattr(worker, "release_slot", None)  # BalancedThreadWorker's connection-table slot
    if release is not None:
        release()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

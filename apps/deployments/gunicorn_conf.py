"""gunicorn settings for serving: ``gunicorn -c python:apps.deployments.gunicorn_conf portal.wsgi``.

Sync workers, one thread each (tree models must run single-threaded per process), and the
Prometheus multi-process clean-up when a worker exits.
"""

import os

worker_class = "sync"
threads = 1
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "30"))


def child_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

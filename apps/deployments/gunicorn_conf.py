"""gunicorn settings for serving: ``gunicorn -c python:apps.deployments.gunicorn_conf portal.wsgi``.

Sync workers, one thread each (tree models must run single-threaded per process), the app and the
model libraries loaded once in the master before forking, each worker loading the live models before
it accepts requests, and the Prometheus multi-process clean-up when a worker exits.
"""

import os

worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = 1
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "30"))
preload_app = True


def when_ready(server):  # master, after preloading the app, before the workers are forked
    from apps.deployments.serving import warm_up_imports

    warm_up_imports()


def post_worker_init(worker):
    from apps.deployments.serving import warm_up_models

    warm_up_models()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

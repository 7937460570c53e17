"""Container entry point: ``web`` | ``worker`` | ``beat`` | ``migrate`` | ``drain`` | any other command.

``drain`` moves the prediction spool of this host into PostgreSQL in a loop (gunicorn starts one itself;
see ``apps.deployments.gunicorn_conf``)."""

import os
import sys


def main(argv: list[str]) -> None:
    role = argv[0] if argv else "web"
    rest = argv[1:]
    if role == "web":
        workers = os.environ.get("WEB_CONCURRENCY", "4")
        # Prometheus multi-process mode: every gunicorn worker writes its metrics here; start clean.
        prom_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/slipway-prometheus")
        os.makedirs(prom_dir, exist_ok=True)
        for name in os.listdir(prom_dir):
            os.unlink(os.path.join(prom_dir, name))
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        cmd = ["gunicorn", "-c", "python:apps.deployments.gunicorn_conf", "portal.wsgi:application",
               "--bind", os.environ.get("BIND", "0.0.0.0:8000"), "--workers", workers,
               "--forwarded-allow-ips", "*", *rest]
    elif role == "worker":
        cmd = ["celery", "-A", "portal", "worker", "-Q", os.environ.get("CELERY_QUEUES", "default,training"),
               "--loglevel", os.environ.get("LOG_LEVEL", "INFO"), *rest]
    elif role == "beat":
        cmd = ["celery", "-A", "portal", "beat", "--loglevel", os.environ.get("LOG_LEVEL", "INFO"),
               "--schedule", os.path.join(os.environ.get("SLIPWAY_DATA_DIR", "/tmp"), "celerybeat-schedule"), *rest]
    elif role == "drain":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
        from apps.deployments.logpipe import drainer_stop_on_signals

        stop = drainer_stop_on_signals()  # a SIGTERM while Django starts still gets the final drain
        import django

        django.setup()
        from apps.deployments.logpipe import drain_forever

        drain_forever(parent=int(rest[0]) if rest else None, stop=stop)
        return
    elif role == "migrate":
        cmd = ["python", "manage.py", "migrate", "--noinput", *rest]
    else:
        cmd = [role, *rest]
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])

import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


def _stop(*_args):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Migrate, load the demo, and run the portal with a Celery worker and beat (embedded defaults)."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true", help="do not start a Celery worker")

    def handle(self, *args, addrport, no_worker, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database ready: {}".format(settings.DATABASES["default"]["NAME"]))
        procs = []
        if not no_worker:
            cmd = [sys.executable, "-m", "celery", "-A", "portal", "worker", "--beat", "-P", "solo",
                   "-Q", "default,training", "--loglevel", "WARNING",
                   "--schedule", str(settings.DATA_DIR / "celerybeat-schedule")]
            procs.append(subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}))
            self.stdout.write(f"Celery worker started (broker: {settings.CELERY_BROKER_URL.split('@')[-1]})")
        # A SIGTERM (e.g. from a process manager) stops the worker too, like Ctrl-C does.
        signal.signal(signal.SIGTERM, _stop)
        try:
            call_command("seed_demo")
            self.stdout.write(self.style.SUCCESS(f"\nSlipway is running at http://{addrport}/  (Ctrl-C stops it)\n"))
            call_command("runserver", addrport, use_reloader=False)
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()

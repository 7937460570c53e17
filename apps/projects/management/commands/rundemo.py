"""``manage.py rundemo``: the portal at once, the demo loading in the background, a quiet console.

1. migrate and create the demo users (seconds), so people can log in right away;
2. start a Celery worker + beat and the demo loader (``seed_demo``, at lower CPU priority) as child processes
   whose output goes to ``$SLIPWAY_DATA_DIR/logs/``; pages show a "demo still loading" banner until it is done;
3. serve pages (runserver, in this process). The console gets a handful of lines: where the portal is, who
   can log in, where the logs are, one line when the demo is loaded, and one line per e-mail sent (saved under
   ``$SLIPWAY_DATA_DIR/mail/``). ``--verbose`` keeps the prediction access log and prints e-mails in full.
"""

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.common import startup
from apps.projects.demo import DEMO_PASSWORD, DEMO_USERS, demo_users_ensure

# Warnings that say nothing to someone trying the demo (the sandbox may run as root; the worker is local).
QUIET_WARNINGS = "ignore:You're running the worker with superuser privileges"


def _stop(*_args):
    raise KeyboardInterrupt


def _addrport(value: str) -> tuple[str, str]:
    m = re.fullmatch(r"(?:(?P<addr>\[[0-9a-fA-F:]+\]|[^:]+):)?(?P<port>\d+)", value)
    if not m:
        raise CommandError(f"{value!r} is not an address and port, e.g. 127.0.0.1:8000")
    return m.group("addr") or "127.0.0.1", m.group("port")


class Command(BaseCommand):
    help = ("Run the portal at once with a Celery worker and beat, and load the demo in the background "
            "(embedded defaults: SQLite, file-system broker).")

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true", help="do not start a Celery worker")
        parser.add_argument("--no-demo", action="store_true", help="do not load the demo projects")
        parser.add_argument("--verbose", action="store_true",
                            help="keep the per-prediction access log and print e-mails in full on the console")

    def handle(self, *args, addrport, no_worker, no_demo, verbose, **options):
        started = time.monotonic()
        addr, port = _addrport(addrport)
        shown = "127.0.0.1" if addr in ("0.0.0.0", "[::]") else addr  # all interfaces: links use loopback
        base_url = os.environ.get("SLIPWAY_BASE_URL") or f"http://{shown}:{port}"
        settings.SLIPWAY_BASE_URL = base_url  # links in e-mails point where this server listens
        child_env = {**os.environ, "SLIPWAY_BASE_URL": base_url, "OMP_NUM_THREADS": "1"}
        if not verbose:
            settings.SERVING_ACCESS_LOG = False
            child_env["SERVING_ACCESS_LOG"] = "false"
            child_env["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), QUIET_WARNINGS]))
            if "EMAIL_URL" not in os.environ:
                settings.EMAIL_BACKEND = "apps.common.mail.SummaryFileBackend"
                child_env["EMAIL_URL"] = "summarymail://"

        call_command("migrate", interactive=False, verbosity=0)
        demo_users_ensure()
        logs = Path(settings.DATA_DIR) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        procs: list[subprocess.Popen] = []
        # A SIGTERM (e.g. from a process manager) stops the children too, like Ctrl-C does.
        signal.signal(signal.SIGTERM, _stop)
        try:
            if not no_worker:
                cmd = [sys.executable, "-m", "celery", "-A", "portal", "worker", "--beat", "-P", "solo",
                       "-Q", "default,training", "--loglevel", "WARNING",
                       "--schedule", str(Path(settings.DATA_DIR) / "celerybeat-schedule")]
                procs.append(self._spawn(cmd, logs / "worker.log", child_env))
            if not no_demo:
                demo_log = logs / "demo.log"
                cmd = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "seed_demo"]
                proc = self._spawn(cmd, demo_log, child_env, nice=10)
                procs.append(proc)
                startup.CURRENT = startup.DemoLoad(process=proc, log=demo_log, started=time.monotonic())
            self._print_start(base_url, logs, no_worker, no_demo, time.monotonic() - started)
            threading.Thread(target=self._watch, name="rundemo-watch", daemon=True).start()
            # runserver's own banner is dropped (the lines above say what matters); its errors still show.
            call_command("runserver", addrport, use_reloader=False, skip_checks=True, stdout=io.StringIO())
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()

    @staticmethod
    def _spawn(cmd, log: Path, env: dict, nice: int = 0) -> subprocess.Popen:
        out = log.open("ab")
        try:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    preexec_fn=(lambda: os.nice(nice)) if nice else None)
        finally:
            out.close()  # the child holds its own descriptor

    def _print_start(self, base_url, logs, no_worker, no_demo, seconds):
        users = "/".join(u for u, _r, _n in DEMO_USERS)
        self.stdout.write(self.style.SUCCESS(f"Slipway is running at {base_url}/  (ready in {seconds:.0f} s; Ctrl-C stops it)"))
        self.stdout.write(f"Log in as {users} or admin, password {DEMO_PASSWORD}; start with the tour: {base_url}/tour/")
        parts = [] if no_worker else ["Celery worker + beat"]
        if not no_demo:
            parts.append("the demo loads in the background (pages say so until it is done)")
        if parts:
            self.stdout.write(f"{'; '.join(parts).capitalize()}. Logs: {logs}/")
        if settings.EMAIL_BACKEND == "apps.common.mail.SummaryFileBackend":
            from apps.common.mail import mail_dir

            self.stdout.write(f"E-mails are saved in {mail_dir()}/ (one line here per e-mail).")
        self.stdout.flush()

    def _watch(self):
        """Print one line when the demo is loaded (or failed) and one line per e-mail sent."""
        from apps.common.mail import outbox_path

        outbox = outbox_path()
        seen = outbox.stat().st_size if outbox.exists() else 0
        reported = False
        while True:
            load = startup.CURRENT
            if load is not None and not reported and not load.poll():
                reported = True
                if load.returncode == 0:
                    self.stdout.write(self.style.SUCCESS(
                        f"Demo loaded in {load.finished - load.started:.0f} s: churn, fraud, support, pricing."))
                else:
                    self.stdout.write(self.style.ERROR(f"Loading the demo failed (exit {load.returncode}): "
                                                       f"see {load.log}"))
            try:
                size = outbox.stat().st_size
            except OSError:
                size = 0
            if size > seen:
                with outbox.open("rb") as f:
                    f.seek(seen)
                    chunk = f.read(size - seen)
                seen = size
                for line in chunk.decode("utf-8", "replace").splitlines():
                    self.stdout.write(line)
            self.stdout.flush()
            time.sleep(1)

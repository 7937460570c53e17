from django.core.management.base import BaseCommand

from apps.readiness.demo import DEMO_PASSWORD, DEMO_USERS, demo_load


class Command(BaseCommand):
    help = ("Load the demo organisation through the real services (idempotent) and print the demo users' "
            "credentials. Background work runs in-process unless --workers (then running Celery workers do it).")

    def add_arguments(self, parser):
        parser.add_argument("--workers", action="store_true",
                            help="wait for running Celery workers instead of running jobs in this process")

    def handle(self, *args, workers=False, **options):
        self.stdout.write("Loading the demo organisation …")
        result = demo_load(stdout=self.stdout, workers=workers)
        self.stdout.write(self.style.SUCCESS(
            f"Demo loaded in {result['seconds']:.0f}s: " + ", ".join(p.name for p in result["projects"])))
        for note in result["notes"]:
            self.stdout.write(f"  note: {note}")
        self.stdout.write(f"Log in as (password for all: {DEMO_PASSWORD}):")
        for username, role, full_name in DEMO_USERS:
            self.stdout.write(f"  {username:8} {role.label:15} {full_name}")
        self.stdout.write(f"  {'admin':8} {'staff (admin)':15} Django admin at /admin/")
        self.stdout.write("Start with the Tour: /tour/  ·  the managers' Portfolio: /portfolio/")

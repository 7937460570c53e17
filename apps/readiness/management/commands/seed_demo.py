from django.core.management.base import BaseCommand

from apps.projects.demo import DEMO_PASSWORD, DEMO_USERS, demo_load


class Command(BaseCommand):
    help = "Load the demo organisation (idempotent) and print the demo users' credentials."

    def handle(self, *args, **options):
        result = demo_load(stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo loaded: " + ", ".join(p.name for p in result["projects"])))
        self.stdout.write(f"Log in as (password for all: {DEMO_PASSWORD}):")
        for username, role, full_name in DEMO_USERS:
            self.stdout.write(f"  {username:8} {role.label:15} {full_name}")
        self.stdout.write(f"  {'admin':8} {'staff (admin)':15} Django admin at /admin/")

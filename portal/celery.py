"""The Celery app. Tasks live in ``workers/`` (thin wrappers around app services)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

WORKER_MODULES = [
    "workers.common",
    "workers.projects",
    "workers.features",
    "workers.registry",
    "workers.deployments",
    "workers.releases",
    "workers.monitoring",
    "workers.training",
    "workers.readiness",
]

app = Celery("slipway", include=WORKER_MODULES)
app.config_from_object("django.conf:settings", namespace="CELERY")

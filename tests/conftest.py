"""Cross-app fixtures: users per role, a project, API clients, a real Celery worker, browser set-up.

The worker is real: ``celery.contrib.testing.worker.start_worker`` consumes from the configured broker
(the embedded file-system broker by default, Redis in CI) in a thread of the test process, with its
own database connection. Tests that a worker reads must use ``django_db(transaction=True)``.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = ROOT / "test-artifacts"
ROLES = ["owner", "data_scientist", "reviewer", "manager", "analyst"]
PASSWORD = "test-pass-123"


@pytest.fixture(autouse=True)
def _fresh_hot_path_caches():
    """Per-process caches of hot read paths start empty in each test (a test database may reuse primary
    keys within their lifetime)."""
    from apps.deployments import serving
    from apps.features.selectors import _ACCESS_CACHE
    from apps.projects.services import _TOKEN_CACHE

    _ACCESS_CACHE.clear()
    _TOKEN_CACHE.clear()
    serving.CACHE.clear()  # deployment state and the predictors: a test database reuses ids (a version
    serving.CACHE.clear_models()  # id of an earlier test would be answered by that test's model)
    yield


@pytest.fixture(scope="session", autouse=True)
def _isolated_storage(django_db_setup):
    """Artifacts of the test session go to a temporary folder, removed at the end."""
    from django.conf import settings

    tmp = Path(tempfile.mkdtemp(prefix="slipway-test-artifacts-"))
    old = settings.ARTIFACT_ROOT
    settings.ARTIFACT_ROOT = tmp
    yield tmp
    settings.ARTIFACT_ROOT = old
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model

    counter = {"n": 0}

    def make(username: str | None = None, **extra):
        counter["n"] += 1
        username = username or f"user{counter['n']}"
        user = get_user_model().objects.create_user(username=username, password=PASSWORD,
                                                    email=f"{username}@example.com", **extra)
        return user

    return make


@pytest.fixture
def project_with_roles(db, make_user):
    """A project with one member per role, plus an outsider. Returns (project, {role: user, 'outsider': user})."""
    from apps.projects.models import Membership
    from apps.projects.services import project_create

    users = {role: make_user(role) for role in ROLES}
    users["outsider"] = make_user("outsider")
    project = project_create(actor=users["owner"], name="Fraud detection", slug="fraud")
    for role in ROLES[1:]:
        Membership.objects.create(project=project, user=users[role], role=role)
    return project, users


@pytest.fixture
def project(project_with_roles):
    return project_with_roles[0]


@pytest.fixture
def users(project_with_roles):
    return project_with_roles[1]


def _token_for(user) -> str:
    from apps.projects.services import api_token_create

    return api_token_create(user=user, name="test")[1]


@pytest.fixture
def api_client():
    """``api_client(user)`` → a Django test Client that sends ``Authorization: Bearer <token>``."""
    from django.test import Client

    def make(user=None):
        if user is None:
            return Client()
        return Client(headers={"Authorization": f"Bearer {_token_for(user)}"})

    return make


@pytest.fixture
def logged_in_client():
    from django.test import Client

    def make(user):
        client = Client()
        client.force_login(user)
        return client

    return make


# --- a real Celery worker ------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _test_broker():
    """With the embedded file-system broker, the test session uses its own folders, set before anything
    is enqueued (so no message lands where the session's worker does not look, and no demo task is
    consumed by tests)."""
    from django.conf import settings

    from portal.celery import app

    if not app.conf.broker_url.startswith("filesystem"):
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="slipway-test-broker-"))
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir()
    app.conf.broker_transport_options = {
        "data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"), "control_folder": str(folder / "control"),
        "store_processed": False, "polling_interval": 0.2,
    }
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = app.conf.broker_transport_options
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, _test_broker):
    """A real Celery worker thread consuming the ``default`` and ``training`` queues."""
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    app.loader.import_module("celery.contrib.testing.tasks")
    with django_db_blocker.unblock():
        try:
            app.control.purge()
        except Exception:  # noqa: BLE001 - an empty or fresh broker
            pass
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, queues=["default", "training"],
                          shutdown_timeout=30, loglevel="WARNING") as worker:
            yield worker


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail with ``message`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout}s waiting for {message}")


def wait_for_job(job_id, *, timeout: float = 90):
    """Wait until the Job row reaches a final state and return it."""
    from apps.projects.models import Job

    return wait_for(lambda: (j := Job.objects.get(pk=job_id)).is_final and j, timeout=timeout,
                    message=f"job {job_id} to finish")


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """Tests create many users; PBKDF2 at production strength would dominate the run time."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

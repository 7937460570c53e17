"""A training job whose worker is killed mid-fit (``kill -9`` of a real ``celery worker`` process): no
half-registered version; the broker redelivers the unacknowledged message (late ack) to the next worker,
which starts over (attempt 2) and registers exactly one version. Also: a cancel request stops a running
job in the worker, and the reaper ends a job whose worker vanished without redelivery."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps.projects.models import Job, JobStatus
from apps.registry.models import ModelVersion
from apps.training.models import TrainingJob
from apps.training.services import jobs as training
from tests.conftest import ROOT, wait_for, wait_for_job
from tests.training.factories import concept_labels, make_trainable

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
KILL_QUEUE = "training-killtest"


def _slow_mlp():
    from sklearn.neural_network import MLPClassifier

    # Full-batch L-BFGS with tol=0: all 400 iterations run, so the refit lasts a few seconds.
    return MLPClassifier(hidden_layer_sizes=(32, 32), solver="lbfgs", max_iter=400, tol=0.0, random_state=0)


def _require_redis_and_postgres() -> None:
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("redelivery after kill -9 is tested with PostgreSQL + Redis (the file-system broker cannot "
                    "redeliver an unacknowledged message; training_jobs_reap fails such a job instead)")


def _worker(name: str, log: Path) -> subprocess.Popen:
    """A real ``celery worker`` process on the test database and broker, consuming only KILL_QUEUE."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    env = {**os.environ,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
           "SLIPWAY_ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT), "CELERY_VISIBILITY_TIMEOUT": "4",
           "TRAINING_QUEUE": KILL_QUEUE, "OMP_NUM_THREADS": "1"}
    cmd = [str(Path(sys.executable).parent / "celery"), "-A", "portal.celery", "worker", "-Q", KILL_QUEUE, "-P", "solo",
           "-c", "1", "-n", f"{name}@%h", "--without-mingle", "--without-gossip", "--without-heartbeat",
           "-l", "INFO"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def test_worker_killed_mid_job_leaves_no_version_and_the_job_is_redelivered_once(celery_worker, project, users,
                                                                               settings, tmp_path):
    # The in-process worker (default + training queues) validates versions; the subprocess workers
    # below are the only consumers of KILL_QUEUE, where this job goes.
    _require_redis_and_postgres()
    settings.TRAINING_QUEUE = KILL_QUEUE
    fs, model, parent = make_trainable(project=project, actor=users["owner"], estimator=_slow_mlp())
    first = _worker("first", tmp_path / "first.log")
    second = None
    try:
        tj = training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                          labels=concept_labels(fs, step_minutes=10))
        wait_for(lambda: "Fitting" in Job.objects.get(pk=tj.job_id).message, timeout=120,
                 message="the first worker to start fitting")
        time.sleep(0.5)
        os.kill(first.pid, signal.SIGKILL)  # the worker dies mid-fit: no ack was sent
        first.wait(timeout=10)
        job = Job.objects.get(pk=tj.job_id)
        assert job.status == JobStatus.RUNNING and job.attempts == 1
        assert ModelVersion.objects.filter(model=model).count() == 1  # nothing half-registered

        second = _worker("second", tmp_path / "second.log")
        job = wait_for_job(tj.job_id, timeout=180)
        assert job.status == JobStatus.SUCCEEDED, job.error + (tmp_path / "second.log").read_text()[-3000:]
        assert job.attempts == 2
        tj = TrainingJob.objects.get(pk=tj.pk)
        assert "attempt 2: the previous worker stopped before finishing" in tj.logs
        versions = ModelVersion.objects.filter(model=model).order_by("version")
        assert versions.count() == 2 and tj.result_version_id == versions.last().pk
        assert versions.last().parent_id == parent.pk
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def test_training_job_is_cancelled_in_the_worker_and_registers_nothing(celery_worker, project, users):
    fs, model, parent = make_trainable(project=project, actor=users["owner"], estimator=_slow_mlp())
    tj = training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                      labels=concept_labels(fs, step_minutes=20))
    wait_for(lambda: Job.objects.get(pk=tj.job_id).status != JobStatus.QUEUED, timeout=120,
             message="a worker to take the job")
    training.training_job_cancel(training_job=TrainingJob.objects.get(pk=tj.pk), actor=users["data_scientist"])
    job = wait_for_job(tj.job_id, timeout=180)
    tj.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.error == "Cancelled by user", tj.logs
    assert "cancel requested by data_scientist" in tj.logs and tj.result_version_id is None
    assert ModelVersion.objects.filter(model=model).count() == 1


@pytest.mark.django_db  # no worker and no commit: nothing is enqueued
def test_training_jobs_reap_fails_a_job_whose_worker_vanished(project, users):
    from datetime import timedelta

    from django.utils import timezone

    from apps.projects.services import job_start

    fs, model, parent = make_trainable(project=project, actor=users["owner"])
    tj = training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                      labels=concept_labels(fs))
    job_start(job_id=tj.job_id)  # a worker took it, then vanished without a trace
    assert training.training_jobs_reap()["reaped"] == []
    later = timezone.now() + timedelta(hours=2)  # beyond the time limit and the visibility timeout
    assert training.training_jobs_reap(now=later)["reaped"] == [tj.pk]
    job = Job.objects.get(pk=tj.job_id)
    assert job.status == JobStatus.FAILED and "worker running this job stopped" in job.error

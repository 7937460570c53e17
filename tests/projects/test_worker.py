"""A real Celery worker runs jobs end to end; the Job row shows progress and result, or the error."""

import pytest

from apps.projects.models import AuditEvent, Job, JobStatus
from apps.projects.services import audit_export_request, audit_record, job_create
from tests.conftest import wait_for_job

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_audit_export_job_runs_in_real_worker_and_records_result(celery_worker, project, users):
    from apps.common.storage import artifact_store

    for i in range(1200):  # enough rows for intermediate progress reports
        audit_record(actor=users["owner"], verb="test.event", project=project, target_label=f"=cmd{i}")
    job = audit_export_request(project=project, actor=users["manager"])
    assert job.status == JobStatus.QUEUED
    job = wait_for_job(job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.progress == 100 and job.started_at and job.finished_at and job.attempts == 1
    assert job.result["rows"] == AuditEvent.objects.filter(project=project).count()
    content = artifact_store().read_bytes(job.result["key"]).decode()
    assert "'=cmd0" in content  # formula injection neutralised
    assert job.created_by == users["manager"]


def test_failing_job_ends_failed_with_its_error_not_stuck(celery_worker, project, users):
    job = job_create(kind="audit.export", actor=users["owner"], project=project,
                     params={"project_id": 999999}, task="workers.projects.audit_export_run")
    job = wait_for_job(job.pk)
    assert job.status == JobStatus.FAILED
    assert "no longer exists" in job.error
    assert job.finished_at is not None


def test_redelivered_message_for_a_finished_job_is_a_no_op(celery_worker, project, users):
    from apps.projects.services import job_enqueue

    job = wait_for_job(audit_export_request(project=project, actor=users["owner"]).pk)
    finished_at = job.finished_at
    job_enqueue(job_id=str(job.pk), task="workers.projects.audit_export_run")
    import time

    time.sleep(2)
    job.refresh_from_db()
    assert job.attempts == 1 and job.finished_at == finished_at
    assert Job.objects.filter(kind="audit.export").count() == 1

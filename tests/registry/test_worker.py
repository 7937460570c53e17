"""Validation runs in a real Celery worker (the session's worker thread, real broker)."""

import pytest

from apps.projects.models import JobStatus
from apps.registry import services
from apps.registry.models import VersionStatus
from tests.conftest import wait_for_job
from tests.registry import factories as f

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_validation_runs_in_the_worker_and_makes_the_version_ready(celery_worker, project, users):
    X, y, names = f.make_classification_frame()
    model = services.registered_model_create(project=project, actor=users["data_scientist"], name="churn",
                                             task="binary_classification", input_contract=f.contract_for(names))
    version = services.model_version_upload(
        model=model, actor=users["data_scientist"],
        artifact=f.upload_file(f.joblib_bytes(f.make_hgb_pipeline(X, y), compress=3), "model.joblib"),
        holdout=f.upload_file(f.table_csv_bytes(X, y), "holdout.csv"))
    job = wait_for_job(version.job_id, timeout=180)
    assert job.status == JobStatus.SUCCEEDED, job.error
    version.refresh_from_db()
    assert version.status == VersionStatus.READY and version.artifact_format == "joblib"
    assert version.metrics["roc_auc"] > 0.8 and version.reference_profile["n_rows"] == len(X)


def test_signature_mismatch_in_the_worker_names_the_features(celery_worker, project, users):
    X, y, names = f.make_classification_frame()
    model = services.registered_model_create(project=project, actor=users["data_scientist"], name="mismatch",
                                             task="binary_classification",
                                             input_contract=f.contract_for(["f0", "f1", "f2", "age"]))
    version = services.model_version_upload(model=model, actor=users["data_scientist"],
                                            artifact=f.upload_file(f.skops_bytes(f.make_logreg(X, y)), "m.skops"))
    job = wait_for_job(version.job_id, timeout=180)
    assert job.status == JobStatus.FAILED and "f3" in job.error and "age" in job.error
    version.refresh_from_db()
    assert version.status == VersionStatus.REJECTED and "f3" in version.status_reason

"""Materialization and training-set builds run in a real Celery worker (PostgreSQL + Redis in CI)."""

from datetime import timedelta

import pytest

from apps.features import services
from apps.features.models import OnlineFeatureValue, TrainingSet
from apps.projects.models import JobStatus
from tests.conftest import wait_for_job
from tests.features.factories import csv_bytes, labels_frame, make_feature_store

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_materialization_job_fills_the_online_store(celery_worker, project, users):
    store = make_feature_store(project=project, actor=users["owner"], ttl=timedelta(days=10000))
    job = services.feature_view_materialize_request(view=store.view, actor=users["data_scientist"])
    job = wait_for_job(job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["entities"] == 5
    assert OnlineFeatureValue.objects.filter(view=store.view).count() == 5
    res = services.online_features_get(feature_set=store.feature_set, entity_keys=["c3"])
    assert res[0]["values"] == {"amount": 323.0, "n_tx": 23} and res[0]["status"]["amount"] == "ok"


def test_training_set_build_job_stores_parquet_and_report(celery_worker, project, users):
    store = make_feature_store(project=project, actor=users["owner"])
    ts = services.training_set_request(project=project, actor=users["data_scientist"], name="ts-worker",
                                       feature_set=store.feature_set, labels_upload=csv_bytes(labels_frame(store)),
                                       labels_filename="labels.csv")
    job = wait_for_job(ts.job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    ts = TrainingSet.objects.get(pk=ts.pk)
    assert ts.status == "ready" and ts.row_count == 48 and len(ts.sha256) == 64
    assert ts.rows_without_features == 8 + 5  # the unknown customer c5 (8 rows), and 00:30 (value due at 01:00)
    assert ts.null_rates["amount"] == pytest.approx(13 / 48, abs=1e-5)


def test_failed_build_marks_the_training_set_failed(celery_worker, project, users):
    """A label artifact that went missing: the job fails with its error and the set is marked failed.
    (Artifacts are content-addressed and shared, so the test points at a missing key instead of
    damaging a stored file.)"""
    from apps.projects.services import job_create

    store = make_feature_store(project=project, actor=users["owner"])
    ts = TrainingSet.objects.create(project=project, name="ts-broken", feature_set=store.feature_set,
                                    label_artifact_key="00/does-not-exist.parquet", label_sha256="0" * 64,
                                    timestamp_column="event_timestamp", label_columns=["is_fraud"])
    job = job_create(kind="features.training_set", actor=users["owner"], project=project,
                     params={"training_set_id": ts.pk}, task="workers.features.training_set_build_run")
    job = wait_for_job(job.pk)
    assert job.status == JobStatus.FAILED and "label file" in job.error
    assert TrainingSet.objects.get(pk=ts.pk).status == "failed"


def _wide_csv(n_cols: int, n_rows: int = 5, *, duplicate: bool = False) -> bytes:
    names = ["customer_id", "event_timestamp", *[f"c{i}" for i in range(n_cols)]]
    if duplicate:
        names[-1] = "c0"
    rows = [",".join([f"k{r}", "2024-01-01T00:00:00Z", *[str(r * 0.5 + i) for i in range(n_cols)]])
            for r in range(n_rows)]
    return (",".join(names) + "\n" + "\n".join(rows) + "\n").encode()


def test_a_wide_source_upload_runs_as_a_background_job_with_progress(celery_worker, project, users, api_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.common.storage import artifact_store
    from apps.features.models import DataSourceVersion

    c = api_client(users["data_scientist"])
    r = c.post("/api/v1/projects/fraud/sources/wide/versions",
               {"file": SimpleUploadedFile("wide.csv", _wide_csv(2000), content_type="text/csv")})
    assert r.status_code == 202, r.content                       # 2,000 columns > FEATURES_UPLOAD_SYNC_MAX_COLUMNS
    job = wait_for_job(r.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result == {"source": "wide", "version": 1, "rows": 5, "columns": 2002} and job.progress == 100
    version = DataSourceVersion.objects.get(source__name="wide")
    assert version.column_types["c1999"] == "float" and version.column_types["customer_id"] == "string"
    assert not artifact_store().exists(job.params["artifact_key"])  # the spooled upload is gone
    # a refused wide file fails its job with the parser's message, and nothing is stored
    r = c.post("/api/v1/projects/fraud/sources/wide/versions",
               {"file": SimpleUploadedFile("dup.csv", _wide_csv(2000, duplicate=True), content_type="text/csv")})
    job = wait_for_job(r.json()["id"])
    assert job.status == JobStatus.FAILED and "two columns named 'c0'" in job.error
    assert DataSourceVersion.objects.filter(source__name="wide").count() == 1
    assert not artifact_store().exists(job.params["artifact_key"])


def test_a_large_label_file_is_read_and_checked_by_the_build_job(celery_worker, project, users, settings):
    from apps.common.storage import artifact_store

    settings.FEATURES_UPLOAD_SYNC_MAX_BYTES = 200     # every label file below counts as large
    store = make_feature_store(project=project, actor=users["owner"])
    ts = services.training_set_request(project=project, actor=users["data_scientist"], name="ts-large",
                                       feature_set=store.feature_set, labels_upload=csv_bytes(labels_frame(store)),
                                       labels_filename="labels.csv")
    assert ts.label_row_count == 0 and ts.job.params["raw_label_key"]       # nothing parsed in the request
    job = wait_for_job(ts.job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    ts = TrainingSet.objects.get(pk=ts.pk)
    assert ts.status == "ready" and ts.label_row_count == ts.row_count == 48 and ts.label_columns == ["is_fraud"]
    assert not artifact_store().exists(job.params["raw_label_key"])
    # a refused large file fails the job and the set with the parser's message
    bad = csv_bytes(labels_frame(store)).replace(b"customer_id,event_timestamp,is_fraud",
                                                 b"customer_id,event_timestamp,customer_id")
    ts = services.training_set_request(project=project, actor=users["data_scientist"], name="ts-bad",
                                       feature_set=store.feature_set, labels_upload=bad, labels_filename="bad.csv")
    job = wait_for_job(ts.job_id)
    assert job.status == JobStatus.FAILED and "two columns named 'customer_id'" in job.error
    assert TrainingSet.objects.get(pk=ts.pk).status == "failed"

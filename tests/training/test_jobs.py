"""Training jobs: services run synchronously (the same body the Celery task runs under job_run)."""

import io

import polars as pl
import pytest

from apps.common.errors import InvalidInput, PayloadTooLarge, PermissionDenied
from apps.common.storage import artifact_store
from apps.projects.models import Job, JobStatus
from apps.projects.services import JobCancelled, job_run, job_start
from apps.registry.models import ModelVersion
from apps.training.models import TrainingJob
from apps.training.services import jobs as training
from tests.registry.factories import run_validation_now
from tests.training.factories import concept_labels, labels_csv, make_trainable

pytestmark = pytest.mark.django_db


def _run(tj):
    job_run(job_id=tj.job_id, body=lambda job: training.training_job_run(job=job))
    tj.refresh_from_db()
    return tj


@pytest.fixture
def trainable(project, users):
    return make_trainable(project=project, actor=users["owner"])


def test_training_job_refits_the_parent_on_a_point_in_time_set_and_registers_a_better_version(trainable, users):
    from apps.features.services import training_set_build_frame

    fs, model, parent = trainable
    labels = concept_labels(fs)
    tj = training.training_job_create(model=model, actor=users["data_scientist"], parent_version=parent.version,
                                      labels=labels_csv(labels), labels_filename="labels.csv")
    assert tj.job.status == JobStatus.QUEUED and tj.label_column == "is_fraud" and tj.result_version is None
    tj = _run(tj)
    assert tj.job.status == JobStatus.SUCCEEDED, tj.job.error
    v = tj.result_version
    assert v.version == 2 and v.parent_id == parent.pk and v.training_set_id == tj.training_set_id
    assert v.code_ref == f"slipway:training-job:{tj.pk}" and v.created_by == users["data_scientist"]
    # Same pipeline and hyperparameters, fresh fit: the candidate beats the parent on the same holdout.
    m = tj.metrics
    assert m["n_holdout"] > 0 and m["candidate"]["n"] == m["parent"]["n"] == m["n_holdout"]
    assert m["candidate"]["accuracy"] > 0.95 > m["parent"]["accuracy"]
    assert m["dropped_rows"] == 20  # the first half hour has no feature value yet (1 h lag)
    # The training set is the feature store's point-in-time join of exactly these labels.
    ts = tj.training_set
    assert ts.is_ready and ts.row_count == labels.height
    stored = pl.read_parquet(artifact_store().path(ts.artifact_key))
    expected = training_set_build_frame(feature_set=fs.feature_set, labels=labels, timestamp_column="event_timestamp")
    assert stored.select(["customer_id", "amount", "n_tx"]).equals(expected.select(["customer_id", "amount", "n_tx"]))
    row = stored.filter(pl.col("customer_id") == "c3").sort("event_timestamp").row(5, named=True)
    assert row["n_tx"] == 4 and row["amount"] == 304.0  # label at 05:30 sees hour 4 (lag 1 h), not hour 5
    # The registry validates it like any upload; split: train strictly before holdout.
    v = run_validation_now(v)
    assert v.status == "ready", v.status_reason
    assert v.metrics["accuracy"] == pytest.approx(m["candidate"]["accuracy"])
    assert "registered" in tj.logs and "holdout" in tj.logs
    verbs = set(tj.project.audit_events.values_list("verb", flat=True))
    assert {"training_job.create", "training_job.register", "feature.trainingset.build", "model_version.upload"} <= verbs


def test_redelivered_training_task_registers_no_second_version(trainable, users):
    fs, model, parent = trainable
    tj = training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                      labels=concept_labels(fs))
    tj = _run(tj)
    first = tj.result_version_id
    # The broker redelivers the message (e.g. the ack was lost): the job is re-run from scratch.
    Job.objects.filter(pk=tj.job_id).update(status=JobStatus.RUNNING)
    _run(tj)
    assert ModelVersion.objects.filter(model=model).count() == 2
    assert TrainingJob.objects.get(pk=tj.pk).result_version_id == first
    # Even if the link was lost, the registry's idempotency key finds the version it registered.
    TrainingJob.objects.filter(pk=tj.pk).update(result_version=None)
    Job.objects.filter(pk=tj.job_id).update(status=JobStatus.RUNNING)
    _run(tj)
    assert ModelVersion.objects.filter(model=model).count() == 2
    assert TrainingJob.objects.get(pk=tj.pk).result_version_id == first


def test_cancelled_training_job_registers_nothing(trainable, users):
    fs, model, parent = trainable
    tj = training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                      labels=concept_labels(fs))
    job = job_start(job_id=tj.job_id)
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)  # someone presses "Cancel" while it runs
    with pytest.raises(JobCancelled):
        training.training_job_run(job=job)
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_cancel_through_the_service_needs_the_right_role(trainable, users):
    fs, model, parent = trainable
    tj = training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                      labels=concept_labels(fs))
    with pytest.raises(PermissionDenied):
        training.training_job_cancel(training_job=tj, actor=users["analyst"])
    tj = training.training_job_cancel(training_job=tj, actor=users["data_scientist"])
    assert tj.job.status == JobStatus.CANCELLED
    assert _run(tj).result_version is None


def test_failed_training_job_shows_its_reason(trainable, users):
    fs, model, parent = trainable
    labels = concept_labels(fs).with_columns(pl.lit(0).alias("is_fraud"))  # a single class
    tj = _run(training.training_job_create(model=model, actor=users["owner"], parent_version=parent, labels=labels))
    assert tj.job.status == JobStatus.FAILED
    assert "single class" in tj.job.error
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_time_window_that_leaves_too_few_rows_fails_with_the_split_reason(trainable, users):
    fs, model, parent = trainable
    tj = training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                      labels=concept_labels(fs), window_start=fs.start,
                                      window_end=fs.start.replace(hour=2))
    tj = _run(tj)
    assert tj.job.status == JobStatus.FAILED and "Cannot split the training set by time" in tj.job.error


@pytest.mark.parametrize("change, field, message", [
    (lambda f: f.drop("customer_id"), "labels", "customer_id"),
    (lambda f: f.with_columns(pl.lit(1).alias("other")), "label_column", "several candidate label columns"),
])
def test_bad_label_files_are_refused_naming_the_column(trainable, users, change, field, message):
    fs, model, parent = trainable
    with pytest.raises(InvalidInput) as exc:
        training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                     labels=labels_csv(change(concept_labels(fs))), labels_filename="l.csv")
    assert exc.value.errors[0]["field"] == field and message in exc.value.message
    assert not TrainingJob.objects.exists()


def test_label_files_go_through_the_one_parser_with_declared_key_types(trainable, users):
    """A duplicate column, or a timestamp column holding text, is refused at creation naming the column."""
    fs, model, parent = trainable
    text = labels_csv(concept_labels(fs)).decode()
    header, rest = text.split("\n", 1)
    duplicated = (header + ",customer_id\n" + "\n".join(r + ",x" for r in rest.strip().split("\n")) + "\n").encode()
    with pytest.raises(InvalidInput, match="two columns named 'customer_id'") as exc:
        training.training_job_create(model=model, actor=users["owner"], parent_version=parent, labels=duplicated,
                                     labels_filename="l.csv")
    assert exc.value.errors[0]["field"] == "labels" and exc.value.errors[0]["column"] == "customer_id"
    frame = concept_labels(fs).with_columns(pl.col("event_timestamp").cast(pl.String))
    bad_time = labels_csv(frame.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("yesterday"))
                                             .otherwise(pl.col("event_timestamp")).alias("event_timestamp")))
    with pytest.raises(InvalidInput, match="'event_timestamp' is declared datetime but holds values that are not "
                                           "timestamps: 'yesterday' in row 2"):
        training.training_job_create(model=model, actor=users["owner"], parent_version=parent, labels=bad_time,
                                     labels_filename="l.csv")
    assert not TrainingJob.objects.exists()


def test_training_job_create_rules(trainable, users, settings):
    fs, model, parent = trainable
    labels = concept_labels(fs)
    with pytest.raises(PermissionDenied):
        training.training_job_create(model=model, actor=users["analyst"], parent_version=parent, labels=labels)
    with pytest.raises(InvalidInput, match="has no version 9"):
        training.training_job_create(model=model, actor=users["owner"], parent_version=9, labels=labels)
    with pytest.raises(InvalidInput, match="between 5% and 50%"):
        training.training_job_create(model=model, actor=users["owner"], parent_version=1, labels=labels,
                                     holdout_fraction=0.9)
    with pytest.raises(InvalidInput, match="end after it starts"):
        training.training_job_create(model=model, actor=users["owner"], parent_version=1, labels=labels,
                                     window_start=fs.end, window_end=fs.start)
    with pytest.raises(InvalidInput, match="empty"):
        training.training_job_create(model=model, actor=users["owner"], parent_version=1, labels=b"")
    with pytest.raises(PayloadTooLarge):
        settings.UPLOAD_MAX_BYTES = 100
        training.training_job_create(model=model, actor=users["owner"], parent_version=1, labels=labels_csv(labels))
    settings.UPLOAD_MAX_BYTES = 10_000_000
    a = training.training_job_create(model=model, actor=users["owner"], parent_version=1, labels=labels,
                                     idempotency_key="abc")
    b = training.training_job_create(model=model, actor=users["owner"], parent_version=1, labels=labels,
                                     idempotency_key="abc")
    assert a.pk == b.pk and TrainingJob.objects.count() == 1


def test_training_api(trainable, users, api_client):
    fs, model, parent = trainable
    client = api_client(users["data_scientist"])
    url = "/api/v1/projects/fraud/models/fraud/training-jobs"
    data = {"parent_version": "1", "labels": io.BytesIO(labels_csv(concept_labels(fs))), "holdout_fraction": "0.25"}
    data["labels"].name = "labels.csv"
    r = client.post(url, data, headers={"Idempotency-Key": "k1"})
    assert r.status_code == 202, r.content
    body = r.json()
    assert body["status"] == "queued" and body["label_rows"] == 960 and body["holdout_fraction"] == 0.25
    data["labels"].seek(0)
    assert client.post(url, data, headers={"Idempotency-Key": "k1"}).json()["id"] == body["id"]
    _run(TrainingJob.objects.get(pk=body["id"]))
    got = client.get(f"{url}/{body['id']}").json()
    assert got["status"] == "succeeded" and got["result_version"] == 2 and got["metrics"]["candidate"]["accuracy"] > 0.95
    assert [j["id"] for j in client.get(url).json()] == [body["id"]]
    assert client.post(f"{url}/{body['id']}/cancel").status_code == 409
    r = api_client(users["analyst"]).post(url, {"parent_version": "1"})
    assert r.status_code == 403 and r.json()["detail"]
    r = client.post(url, {"parent_version": "1"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "labels"
    assert api_client(users["outsider"]).get(url).status_code == 404


def test_training_pages(trainable, users, logged_in_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fs, model, parent = trainable
    client = logged_in_client(users["owner"])
    base = "/projects/fraud/models/fraud/training/"
    assert client.get(base).status_code == 200
    assert "Refit fraud on fresh labels" in client.get(base + "new/").content.decode()
    bad = client.post(base + "new/", {"parent_version": "1", "timestamp_column": "when",
                                      "labels": SimpleUploadedFile("l.csv", labels_csv(concept_labels(fs)))})
    assert bad.status_code == 422 and "when" in bad.content.decode()
    r = client.post(base + "new/", {"parent_version": "1", "timestamp_column": "event_timestamp",
                                    "holdout_fraction": "0.2",
                                    "labels": SimpleUploadedFile("l.csv", labels_csv(concept_labels(fs)))})
    assert r.status_code == 302
    tj = TrainingJob.objects.get()
    page = client.get(r["Location"])
    assert page.status_code == 200 and "Waiting for a training worker" in page.content.decode()
    assert client.get(r["Location"], headers={"HX-Request": "true"}).status_code == 200  # still polling
    _run(tj)
    frag = client.get(r["Location"], headers={"HX-Request": "true"})
    assert frag.status_code == 286 and "fraud v2" in frag.content.decode() and "training-metrics" in frag.content.decode()
    assert logged_in_client(users["analyst"]).get(base + "new/").status_code == 403


def test_a_feature_set_with_a_view_that_predates_declared_key_types_is_refused_upfront(trainable, users):
    from apps.common.errors import Conflict
    from apps.features.models import Entity
    from apps.features.services import _PLANS

    fs, model, parent = trainable
    Entity.objects.filter(pk=fs.entity.pk).update(value_type="int")  # its view reads a string key column
    _PLANS.clear()
    with pytest.raises(Conflict, match="View customer_stats v1 cannot be joined: its key column 'customer_id' holds "
                                       "string values") as exc:
        training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                     labels=labels_csv(concept_labels(fs)), labels_filename="l.csv")
    assert exc.value.errors[0]["field"] == "feature_set" and not TrainingJob.objects.exists()

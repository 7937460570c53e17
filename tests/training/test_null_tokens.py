"""Null tokens per upload for training-job label files (the one parser's rule: only the empty cell is null
unless the upload names more tokens), through the service, the API and the page, in CSV and Parquet."""

import io

import polars as pl
import pytest

from apps.common.errors import InvalidInput
from apps.common.storage import artifact_store
from apps.training.models import TrainingJob
from apps.training.services import jobs as training
from tests.training.factories import concept_labels, make_trainable

pytestmark = pytest.mark.django_db
URL = "/api/v1/projects/fraud/models/fraud/training-jobs"


@pytest.fixture
def trainable(project, users):
    return make_trainable(project=project, actor=users["owner"])


def _labels(fs, fmt: str) -> bytes:
    """The label file with a ``country`` column holding "NA" (Namibia) in every other row."""
    frame = concept_labels(fs)
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("NA")).otherwise(pl.lit("US"))
                               .alias("country"))
    if fmt == "csv":
        return frame.write_csv().encode()
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def _stored(tj: TrainingJob) -> pl.DataFrame:
    return pl.read_parquet(artifact_store().path(tj.label_artifact_key))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_na_stays_a_string_by_default_and_is_null_when_named(trainable, users, fmt):
    fs, model, parent = trainable
    plain = training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                         labels=_labels(fs, fmt), labels_filename=f"l.{fmt}", label_column="is_fraud")
    country = _stored(plain).get_column("country")
    assert country.null_count() == 0 and country.to_list()[:2] == ["NA", "US"]
    told = training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                        labels=_labels(fs, fmt), labels_filename=f"l.{fmt}", label_column="is_fraud",
                                        null_values="NA")
    country = _stored(told).get_column("country")
    assert country.null_count() == country.len() // 2 and country.to_list()[:2] == [None, "US"]
    with pytest.raises(InvalidInput, match="null_values must be a list of strings") as exc:
        training.training_job_create(model=model, actor=users["owner"], parent_version=parent,
                                     labels=_labels(fs, fmt), labels_filename=f"l.{fmt}", null_values='["NA", 2]')
    assert exc.value.errors[0]["field"] == "null_values"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_api_takes_null_tokens(trainable, users, api_client, fmt):
    fs, model, parent = trainable
    client = api_client(users["data_scientist"])

    def post(**extra):
        labels = io.BytesIO(_labels(fs, fmt))
        labels.name = f"labels.{fmt}"
        return client.post(URL, {"parent_version": "1", "labels": labels, "label_column": "is_fraud", **extra})

    r = post()
    assert r.status_code == 202, r.content
    assert _stored(TrainingJob.objects.get(pk=r.json()["id"])).get_column("country").null_count() == 0
    r = post(null_values='["NA"]')
    assert r.status_code == 202, r.content
    assert _stored(TrainingJob.objects.get(pk=r.json()["id"])).get_column("country").null_count() > 0
    r = post(null_values="[")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "null_values"
    assert "null_values is not a JSON list" in r.json()["detail"]


def test_page_offers_null_tokens(trainable, users, logged_in_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fs, model, parent = trainable
    client = logged_in_client(users["owner"])
    url = "/projects/fraud/models/fraud/training/new/"
    assert 'name="null_values"' in client.get(url).content.decode()
    form = {"parent_version": "1", "timestamp_column": "event_timestamp", "label_column": "is_fraud",
            "holdout_fraction": "0.2"}
    bad = client.post(url, {**form, "null_values": "[1]",
                            "labels": SimpleUploadedFile("l.csv", _labels(fs, "csv"))})
    assert bad.status_code == 422 and "null_values must be a list of strings" in bad.content.decode()
    r = client.post(url, {**form, "null_values": "NA", "labels": SimpleUploadedFile("l.csv", _labels(fs, "csv"))})
    assert r.status_code == 302
    assert _stored(TrainingJob.objects.get()).get_column("country").null_count() > 0

"""Null tokens per upload for the registry's holdout and training data files (the one parser's rule: only the
empty cell is null unless the upload names more tokens), through the API and the upload page, CSV and Parquet."""

import io

import pytest

from apps.registry.models import ModelVersion
from tests.registry import factories as f

pytestmark = pytest.mark.django_db
BASE = "/api/v1/projects/fraud/models"
CONTRACT = [{"name": "f0", "type": "float"}, {"name": "f1", "type": "float"}, {"name": "f2", "type": "float"},
            {"name": "f3", "type": "float", "nullable": True}]


def _table(fmt: str) -> bytes:
    """300 rows of f0..f3 + target, where f3 is text holding "NA" in every 10th row."""
    X, y, _ = f.make_classification_frame()
    df = X.copy()
    df["f3"] = [("NA" if i % 10 == 0 else repr(float(v))) for i, v in enumerate(X["f3"])]
    df["target"] = y
    if fmt == "csv":
        return df.to_csv(index=False).encode()
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)  # f3 is a string column in the Parquet file
    return buf.getvalue()


@pytest.fixture
def model_client(project, users, api_client):
    client = api_client(users["data_scientist"])
    r = client.post(BASE, {"name": "churn", "task": "binary_classification", "input_contract": CONTRACT},
                    content_type="application/json")
    assert r.status_code == 201, r.content
    X, y, _ = f.make_classification_frame()
    return client, f.skops_bytes(f.make_hgb_pipeline(X, y))  # HistGradientBoosting takes missing values


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("field", ["holdout", "training_data"])
def test_na_is_a_string_by_default_and_null_when_the_upload_names_it(model_client, fmt, field):
    client, artifact = model_client

    def upload(**extra):
        data = {"artifact": f.upload_file(artifact, "m.skops"), field: f.upload_file(_table(fmt), f"data.{fmt}"),
                **extra}
        r = client.post(f"{BASE}/churn/versions", data)
        assert r.status_code == 202, r.content
        return f.run_validation_now(ModelVersion.objects.get(pk=r.json()["id"]))

    label = "holdout file" if field == "holdout" else "training data file"
    plain = upload()  # "NA" is Namibia's country code unless told otherwise: text in a float feature
    assert plain.status == "rejected"
    assert f"The {label}: Column 'f3' is declared float but holds text: 'NA' in row 1" in plain.status_reason
    told = upload(null_values="NA")
    assert told.status == "ready", told.status_reason
    assert told.validation_report["null_values"] == ["NA"]
    assert told.reference_profile["source"] == ("holdout" if field == "holdout" else "training")
    assert told.reference_profile["features"]["f3"]["missing_rate"] == pytest.approx(0.1)
    assert told.reference_profile["features"]["f0"]["missing_rate"] == 0
    as_json = upload(null_values='["NA", "null"]')  # a JSON list works as well
    assert as_json.status == "ready" and as_json.validation_report["null_values"] == ["NA", "null"]


def test_bad_null_tokens_are_a_422_on_the_field(model_client):
    client, artifact = model_client
    r = client.post(f"{BASE}/churn/versions", {"artifact": f.upload_file(artifact, "m.skops"),
                                               "holdout": f.upload_file(_table("csv"), "h.csv"),
                                               "null_values": '["NA", 1]'})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "null_values"
    assert "null_values must be a list of strings" in r.json()["detail"]
    assert not ModelVersion.objects.exists()


def test_upload_page_offers_null_tokens(model_client, users, logged_in_client):
    _client, artifact = model_client
    web = logged_in_client(users["data_scientist"])
    url = "/projects/fraud/models/churn/upload/"
    page = web.get(url)
    assert page.status_code == 200 and 'name="null_values"' in page.content.decode()
    bad = web.post(url, {"artifact": f.upload_file(artifact, "m.skops"), "null_values": "[1]"})
    assert bad.status_code == 422 and "null_values must be a list of strings" in bad.content.decode()
    ok = web.post(url, {"artifact": f.upload_file(artifact, "m.skops"), "null_values": "NA, null",
                        "holdout": f.upload_file(_table("parquet"), "h.parquet")})
    assert ok.status_code == 302, ok.content.decode()[:2000]
    version = f.run_validation_now(ModelVersion.objects.get())
    assert version.status == "ready", version.status_reason
    assert version.validation_report["null_values"] == ["NA", "null"]
    assert version.reference_profile["features"]["f3"]["missing_rate"] == pytest.approx(0.1)

"""Registry pages: render, permissions, upload form errors, download headers."""

import pytest

from apps.registry import services
from tests.registry import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready(project, users):
    X, y, names = f.make_classification_frame()
    v1 = f.register_ready_version(project, users["data_scientist"], f.make_logreg(X, y), X, y, names,
                                  "binary_classification", model_name="churn",
                                  model_card="# Churn\n\n<script>alert(1)</script>**bold**")
    v2 = f.register_ready_version(project, users["data_scientist"], f.make_hgb_pipeline(X, y), X, y, names,
                                  "binary_classification", model=v1.model)
    return v1, v2


def test_pages_render(ready, users, logged_in_client):
    client = logged_in_client(users["analyst"])
    assert b"churn" in client.get("/projects/fraud/models/").content
    assert b"v2" in client.get("/projects/fraud/models/churn/").content
    page = client.get("/projects/fraud/models/churn/v1/")
    assert page.status_code == 200 and b"<strong>bold</strong>" in page.content
    assert b"<script>alert(1)</script>" not in page.content
    compare = client.get("/projects/fraud/models/churn/compare/?a=1&b=2")
    assert compare.status_code == 200 and b"fig-metrics" in compare.content and b"param-diff" in compare.content
    fragment = client.get("/projects/fraud/models/churn/compare/?a=1&b=2&feature=f1&fragment=profile",
                          headers={"HX-Request": "true"})
    assert fragment.content.strip().startswith(b'<div id="profile-chart">')


def test_analyst_cannot_upload_or_archive(ready, users, logged_in_client):
    client = logged_in_client(users["analyst"])
    assert client.get("/projects/fraud/models/churn/upload/").status_code == 403
    assert client.post("/projects/fraud/models/churn/v1/archive/").status_code == 403
    assert client.get("/projects/fraud/models/new/").status_code == 403


def test_download_is_an_attachment_with_nosniff(ready, users, logged_in_client):
    resp = logged_in_client(users["reviewer"]).get("/projects/fraud/models/churn/v1/download/")
    assert resp.status_code == 200
    assert resp["Content-Disposition"].startswith("attachment;") and "churn-v1.skops" in resp["Content-Disposition"]
    assert resp["X-Content-Type-Options"] == "nosniff" and resp["Content-Type"] == "application/octet-stream"


def test_model_create_and_upload_form_errors(project, users, logged_in_client):
    client = logged_in_client(users["data_scientist"])
    bad = client.post("/projects/fraud/models/new/", {"name": "m", "task": "regression", "input_contract": "a:complex"})
    assert bad.status_code == 422 and b"is not one of float, int, bool, string, datetime" in bad.content
    ok = client.post("/projects/fraud/models/new/", {"name": "m", "task": "binary_classification",
                                                     "input_contract": "f0, f1, f2, f3"})
    assert ok.status_code == 302
    wrong = client.post("/projects/fraud/models/m/upload/", {"artifact": f.upload_file(b"plain text", "m.pkl")})
    assert wrong.status_code == 415 and b"Not a recognised model file" in wrong.content
    good = client.post("/projects/fraud/models/m/upload/",
                       {"artifact": f.upload_file(f.make_logreg_skops_bytes(), "m.skops"), "holdout_target": "target"})
    assert good.status_code == 302 and good["Location"].endswith("/models/m/v1/")


def test_upload_form_refuses_oversize_files(project, users, logged_in_client, settings):
    services.registered_model_create(project=project, actor=users["owner"], name="m", task="regression",
                                     input_contract="a")
    settings.UPLOAD_MAX_BYTES = 1000
    resp = logged_in_client(users["owner"]).post("/projects/fraud/models/m/upload/",
                                                 {"artifact": f.upload_file(b"\x80\x04" + b"N" * 3000, "m.pkl")})
    assert resp.status_code == 413 and b"limit of 1,000 bytes" in resp.content


def test_version_status_fragment_refreshes_when_done(ready, users, logged_in_client):
    resp = logged_in_client(users["analyst"]).get("/projects/fraud/models/churn/v1/status/",
                                                  headers={"HX-Request": "true"})
    assert resp.status_code == 200 and resp["HX-Refresh"] == "true"


# --- the upload form's contract preview (htmx; data files only) ----------------------------------------


def _infer_model(project, users):
    return services.registered_model_create(project=project, actor=users["data_scientist"], name="churn",
                                            task="binary_classification", input_contract="infer")


PREVIEW = "/projects/fraud/models/churn/upload/contract-preview/"


def test_contract_preview_reads_the_holdout_columns_and_dtypes_without_its_target(project, users,
                                                                                   logged_in_client):
    _infer_model(project, users)
    client = logged_in_client(users["data_scientist"])
    page = client.get("/projects/fraud/models/churn/upload/")
    assert b'id="contract-preview-source"' in page.content and b'hx-params="holdout,training_data,holdout_target,null_values"' in page.content
    csv = (b"country,Monthly Spend ($),tenure months,signup,label\n"
           b"DE,12.5,3,2026-01-02,yes\nUS,,7,2026-02-03T10:00:00Z,no\nDE,9.0,1,2026-03-04,no\n")
    resp = client.post(PREVIEW, {"holdout": f.upload_file(csv, "h.csv"), "holdout_target": "label"},
                       headers={"HX-Request": "true"})
    assert resp.status_code == 200, resp.content
    html = resp.content.decode()
    assert html.strip().startswith('<div id="contract-preview"')
    rows = [r for r in html.split("<tr>")[2:]]
    assert [r.split('class="mono">')[1].split("<")[0] for r in rows] == ["country", "Monthly Spend ($)",
                                                                          "tenure months", "signup"]
    assert "string" in rows[0] and "DE, US" in rows[0]
    assert "float" in rows[1] and ">yes<" in rows[1]  # a missing value: nullable
    assert "int" in rows[2] and ">no<" in rows[2]
    assert "datetime" in rows[3]
    assert "label" not in "".join(rows)


def test_contract_preview_prefers_the_training_data_and_names_a_missing_target(project, users, logged_in_client):
    _infer_model(project, users)
    client = logged_in_client(users["data_scientist"])
    resp = client.post(PREVIEW, {"holdout": f.upload_file(b"a,b\n1,2\n", "h.csv"),
                                 "training_data": f.upload_file(b"a,b,target\n1.5,x,1\n", "t.csv"),
                                 "holdout_target": "target"})
    html = resp.content.decode()
    assert resp.status_code == 200 and "training data file" in html and "as validation reads them" in html
    assert ">float<" in html and ">string<" in html
    resp = client.post(PREVIEW, {"holdout": f.upload_file(b"a,b\n1,2\n", "h.csv"), "holdout_target": "target"})
    assert "has no target column &#x27;target&#x27;" in resp.content.decode()


def test_a_data_file_is_checked_against_a_declared_contract_before_upload(project, users, logged_in_client):
    """With a declared contract the same preview reads the file with the declared types (as validation does)
    and names what validation refuses (a missing feature, text in a number), what serving refuses (empty
    cells of a non-nullable feature, values outside declared categories) and the columns it ignores."""
    services.registered_model_create(
        project=project, actor=users["data_scientist"], name="churn", task="binary_classification",
        input_contract=[{"name": "amount", "type": "float"}, {"name": "plan", "type": "string",
                                                              "categories": ["basic", "pro"]},
                        {"name": "age", "type": "int", "nullable": True}])
    client = logged_in_client(users["data_scientist"])
    page = client.get("/projects/fraud/models/churn/upload/")
    assert b"check it against the declared contract" in page.content
    good = client.post(PREVIEW, {"holdout": f.upload_file(b"amount,plan,age,target,note\n1.5,basic,30,1,x\n"
                                                          b"2.0,pro,,0,y\n", "h.csv")})
    html = good.content.decode()
    assert good.status_code == 200 and 'id="contract-check-ok"' in html and "1 other column ignored" in html
    assert "contract-check-refused" not in html
    assert '<p class="small muted" id="contract-check-ignored">' in html and '<span class="mono">note</span>' in html
    assert html.count("badge badge-ok") == 3 and "1.5 to 2" in html and "1 empty" in html
    # a missing feature (refused), an unknown category and an empty non-nullable cell (serving refuses them)
    bad = client.post(PREVIEW, {"holdout": f.upload_file(b"amount,plan,target\n1.5,gold,1\n,basic,0\n", "h.csv")})
    html = bad.content.decode()
    assert bad.status_code == 200 and 'id="contract-check-refused"' in html
    assert "the file lacks the contract feature &#x27;age&#x27;" in html
    assert "1 value(s) outside the declared categories (gold): serving refuses them (422)" in html
    assert "1 empty cell(s) in a feature that is not nullable" in html
    # text in a declared number is named with its column, as validation names it; "NA" only with null tokens
    text = client.post(PREVIEW, {"holdout": f.upload_file(b"amount,plan,age,target\nNA,basic,3,1\n", "h.csv")})
    assert text.status_code == 422 and b"amount" in text.content and b'id="contract-preview-error"' in text.content
    na = client.post(PREVIEW, {"holdout": f.upload_file(b"amount,plan,age,target\nNA,basic,3,1\n", "h.csv"),
                               "null_values": "NA"})
    assert na.status_code == 200 and "1 empty cell(s) in a feature that is not nullable" in na.content.decode()


def test_contract_preview_refuses_unreadable_files_and_checks_permission_and_csrf(project, users, logged_in_client):
    _infer_model(project, users)
    ds = logged_in_client(users["data_scientist"])
    bad = ds.post(PREVIEW, {"holdout": f.upload_file(b"\x00\x01binary", "h.csv")})
    assert bad.status_code == 422 and b"not a CSV or Parquet file" in bad.content
    dup = ds.post(PREVIEW, {"holdout": f.upload_file(b"a,a,target\n1,2,3\n", "h.csv")})
    assert dup.status_code == 422 and b'id="contract-preview-error"' in dup.content
    empty = ds.post(PREVIEW, {"holdout_target": "target"})
    assert empty.status_code == 200 and b"contract-preview-empty" in empty.content
    assert ds.get(PREVIEW).status_code == 405
    assert logged_in_client(users["analyst"]).post(PREVIEW, {"holdout": f.upload_file(b"a\n1\n", "h.csv")}
                                                   ).status_code == 403
    assert logged_in_client(users["outsider"]).post(PREVIEW, {"holdout": f.upload_file(b"a\n1\n", "h.csv")}
                                                    ).status_code == 404
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(users["data_scientist"])
    assert strict.post(PREVIEW, {"holdout": f.upload_file(b"a\n1\n", "h.csv")}).status_code == 403


def test_version_page_shows_a_datetime_features_profile_as_dates(project, users, logged_in_client):
    import numpy as np
    import pandas as pd

    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.registry.profile import build_reference_profile

    contract = [{"name": "amount", "type": "float"}, {"name": "signup", "type": "datetime"}]
    df = pd.DataFrame({"amount": [1.0, 2.0, 3.0],
                       "signup": np.array(["2026-01-01T00:00", "2026-01-02T00:00", "2026-01-03T12:00"],
                                          dtype="datetime64[ns]")})
    model = RegisteredModel.objects.create(project=project, name="dates", task="regression", input_contract=contract)
    ModelVersion.objects.create(model=model, version=1, status="ready", artifact_key="k", artifact_sha256="0" * 64,
                                artifact_format="skops", reference_profile=build_reference_profile(df, contract))
    html = logged_in_client(users["analyst"]).get("/projects/fraud/models/dates/v1/").content.decode()
    row = html.split('<td class="mono">signup</td>')[1].split("</tr>")[0]
    assert "2026-01-01 00:00" in row and "2026-01-02 00:00" in row and "2026-01-03 12:00" in row
    assert "days" in row and "176" not in row  # dates, not seconds since 1970

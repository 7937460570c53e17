"""The registry API through the mounted NinjaAPI (token auth, JSON errors)."""

import pytest

from apps.registry.models import ModelVersion
from tests.registry import factories as f

pytestmark = pytest.mark.django_db
BASE = "/api/v1/projects/fraud/models"


def _create(client, name="churn", names=("f0", "f1", "f2", "f3")):
    return client.post(BASE, {"name": name, "task": "binary_classification",
                              "input_contract": [{"name": n, "type": "float"} for n in names]},
                       content_type="application/json")


def test_api_create_upload_list_get_metrics_lineage(project, users, api_client):
    client = api_client(users["data_scientist"])
    assert _create(client).status_code == 201
    X, y, names = f.make_classification_frame()
    artifact, holdout = f.skops_bytes(f.make_logreg(X, y)), f.table_csv_bytes(X, y)

    def form():
        return {"artifact": f.upload_file(artifact, "model.skops"), "holdout": f.upload_file(holdout, "holdout.csv"),
                "tags": "baseline", "code_ref": "git:abc123", "uploader_metrics": '{"auc": 0.8}',
                "model_card": "# Churn"}

    resp = client.post(f"{BASE}/churn/versions", form(), headers={"Idempotency-Key": "k1"})
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["status"] == "validating" and body["version"] == 1 and body["artifact_format"] == "skops"
    f.run_validation_now(ModelVersion.objects.get(pk=body["id"]))
    got = client.get(f"{BASE}/churn/versions/1").json()
    assert got["status"] == "ready" and got["tags"] == ["baseline"]
    assert client.get(f"{BASE}/churn/versions").json()[0]["version"] == 1
    metrics = client.get(f"{BASE}/churn/versions/1/metrics").json()
    assert metrics["metrics"]["roc_auc"] > 0.7 and metrics["uploader_metrics"] == {"auc": 0.8}
    lineage = client.get(f"{BASE}/churn/versions/1/lineage").json()
    assert lineage["code_ref"] == "git:abc123" and lineage["created_by"] == "data_scientist"
    assert len(client.get(f"{BASE}/churn/versions/1/profile").json()["reference_profile"]["features"]) == 4
    # a retry (same Idempotency-Key, same body) returns the first version instead of creating another
    again = client.post(f"{BASE}/churn/versions", form(), headers={"Idempotency-Key": "k1"})
    assert again.status_code == 202 and again.json()["version"] == 1
    # the same key with another body is a conflict, not the old result
    other = client.post(f"{BASE}/churn/versions", {"artifact": f.upload_file(f.make_logreg_skops_bytes(), "m.skops")},
                        headers={"Idempotency-Key": "k1"})
    assert other.status_code == 409 and other.json()["errors"][0]["field"] == "Idempotency-Key"
    archived = client.post(f"{BASE}/churn/versions/1/archive", {"archived": True}, content_type="application/json")
    assert archived.json()["status"] == "archived"


def test_api_errors_are_json_with_fields(project, users, api_client, settings):
    client = api_client(users["data_scientist"])
    _create(client)
    dup = _create(client)
    assert dup.status_code == 409 and dup.json()["errors"][0]["field"] == "name"
    missing = client.post(f"{BASE}/churn/versions", {})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "artifact"
    wrong = client.post(f"{BASE}/churn/versions", {"artifact": f.upload_file(b"GIF89a....", "m.pkl")})
    assert wrong.status_code == 415 and "Not a recognised model file" in wrong.json()["detail"]
    empty = client.post(f"{BASE}/churn/versions", {"artifact": f.upload_file(b"", "m.pkl")})
    assert empty.status_code in (422,) and "empty" in empty.json()["detail"].lower()
    settings.UPLOAD_MAX_BYTES = 2000
    big = client.post(f"{BASE}/churn/versions", {"artifact": f.upload_file(b"\x80\x04" + b"N" * 5000, "m.pkl")})
    assert big.status_code == 413 and "2,000 bytes" in big.json()["detail"]
    assert not ModelVersion.objects.exists()
    bad_contract = client.post(BASE, {"name": "x", "task": "binary_classification",
                                      "input_contract": [{"name": "a", "type": "complex"}]},
                               content_type="application/json")
    assert bad_contract.status_code == 422 and bad_contract.json()["errors"][0]["field"] == "input_contract"


def test_api_permissions(project, users, api_client):
    assert _create(api_client(users["analyst"])).status_code == 403
    assert _create(api_client(users["outsider"])).status_code == 404
    assert api_client().get(BASE).status_code == 401
    _create(api_client(users["owner"]))
    resp = api_client(users["analyst"]).post(f"{BASE}/churn/versions",
                                             {"artifact": f.upload_file(f.make_logreg_skops_bytes(), "m.skops")})
    assert resp.status_code == 403
    assert api_client(users["analyst"]).get(BASE).json()[0]["name"] == "churn"

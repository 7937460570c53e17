"""The version page's metrics card tells a rejected upload with a holdout apart from an upload without one."""

import pytest

from apps.registry.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db


def _version(project, user, **kw):
    model = RegisteredModel.objects.create(project=project, name="churn", task="binary_classification",
                                           input_contract=[{"name": "f0", "type": "float"}], created_by=user)
    return ModelVersion.objects.create(model=model, version=1, artifact_key="x", artifact_sha256="0" * 64,
                                       artifact_format="skops", created_by=user, **kw)


def test_rejected_version_with_a_holdout_says_so(logged_in_client, project, users):
    v = _version(project, users["owner"], status="rejected", holdout_key="h", holdout_filename="holdout.csv",
                 holdout_target="target",
                 validation_report={"result": "rejected", "step": "signature", "reason": "input f0 is missing"})
    html = logged_in_client(users["data_scientist"]).get(
        f"/projects/{project.slug}/models/churn/v{v.version}/").content.decode()
    assert "No holdout was uploaded" not in html
    assert "A holdout was uploaded (holdout.csv), but validation rejected this version at the signature step" in html
    assert "input f0 is missing" in html


def test_version_without_holdout_says_none_was_uploaded(logged_in_client, project, users):
    v = _version(project, users["owner"], status="ready")
    html = logged_in_client(users["data_scientist"]).get(
        f"/projects/{project.slug}/models/churn/v{v.version}/").content.decode()
    assert "No holdout was uploaded" in html

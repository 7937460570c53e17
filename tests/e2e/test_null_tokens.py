"""Null tokens in a real browser, with a real worker: a holdout whose float feature holds "NA" is rejected
when uploaded as is (NA is a string by default) and validates when the upload form names "NA" as a null
token; the training-job form takes the same field."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_registry_form_null_tokens_turn_na_into_missing_values(page, live_server, login, shot, celery_worker,
                                                               project_with_roles, tmp_path):
    from apps.registry import services
    from tests.registry import factories as f

    project, users = project_with_roles
    ds = users["data_scientist"]
    X, y, names = f.make_classification_frame()
    contract = [{"name": n, "type": "float", "nullable": n == "f3"} for n in names]
    services.registered_model_create(project=project, actor=ds, name="churn", task="binary_classification",
                                     input_contract=contract)
    artifact = tmp_path / "m.skops"
    artifact.write_bytes(f.skops_bytes(f.make_hgb_pipeline(X, y)))
    frame = X.copy()
    frame["f3"] = ["NA" if i % 10 == 0 else repr(float(v)) for i, v in enumerate(X["f3"])]
    frame["target"] = y
    holdout = tmp_path / "holdout.csv"
    holdout.write_bytes(frame.to_csv(index=False).encode())

    login(page, ds)
    for tokens, badge in (("", "Rejected"), ("NA", "Ready")):
        page.goto(f"{live_server.url}/projects/fraud/models/churn/upload/")
        page.set_input_files("#id_artifact", str(artifact))
        page.set_input_files("#id_holdout", str(holdout))
        page.get_by_label("Null tokens").fill(tokens)
        page.get_by_role("button", name="Upload and validate").click()
        page.wait_for_url("**/models/churn/v*/")
        expect(page.locator("#version-badge")).to_have_text(badge, timeout=120_000)
        if badge == "Rejected":
            expect(page.get_by_text("Column 'f3' is declared float but holds text: 'NA' in row 1").first) \
                .to_be_visible()
            shot(page, "registry-null-tokens-rejected")


def test_training_form_null_tokens_are_checked(page, live_server, login, project, users, tmp_path, celery_worker):
    from tests.training.factories import concept_labels, labels_csv, make_trainable

    fs, model, parent = make_trainable(project=project, actor=users["owner"])
    labels = tmp_path / "labels.csv"
    labels.write_bytes(labels_csv(concept_labels(fs)))
    login(page, users["data_scientist"])
    page.goto(f"{live_server.url}/projects/{project.slug}/models/fraud/training/new/")
    page.set_input_files("#id_labels", str(labels))
    page.get_by_label("Null tokens").fill('["NA", 1]')
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#id_null_values_errors")).to_contain_text("null_values must be a list of strings")
    page.set_input_files("#id_labels", str(labels))
    page.get_by_label("Null tokens").fill("NA, null")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#training-status")).to_be_visible()
    # the job runs in the worker: let it end before the test's database is flushed under it
    from apps.training.models import TrainingJob
    from tests.conftest import wait_for, wait_for_job

    tj = wait_for(lambda: TrainingJob.objects.filter(model=model).exclude(job=None).first(),
                  message="the training job")
    wait_for_job(tj.job_id, timeout=180)

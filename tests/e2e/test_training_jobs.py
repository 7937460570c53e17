"""Training jobs in a real browser and a real worker: a data scientist refits a version on a label file,
watches progress and the log, reads candidate vs parent on the holdout and opens the new version."""

import pytest
from playwright.sync_api import expect

from tests.training.factories import concept_labels, labels_csv, make_trainable

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_start_a_training_job_watch_it_and_open_the_new_version(page, live_server, login, shot, project, users,
                                                                celery_worker, tmp_path):
    fs, model, parent = make_trainable(project=project, actor=users["owner"])
    labels = tmp_path / "labels.csv"
    labels.write_bytes(labels_csv(concept_labels(fs)))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(labels_csv(concept_labels(fs).drop("customer_id")))

    login(page, users["data_scientist"])
    page.goto(f"{live_server.url}/projects/{project.slug}/models/fraud/training/")
    expect(page.get_by_text("No training jobs yet")).to_be_visible()
    page.get_by_role("link", name="Start a training job").click()
    page.set_input_files("#id_labels", str(bad))
    page.get_by_role("button", name="Start training").click()
    expect(page.locator(".errorlist")).to_contain_text("customer_id")  # the missing column is named
    shot(page, "registry-training-form-error")

    page.set_input_files("#id_labels", str(labels))
    page.fill("#id_holdout_fraction", "0.25")
    page.fill("#id_note", "new fraud pattern")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#training-status")).to_be_visible()
    expect(page.locator("#training-log")).to_contain_text("Point-in-time join", timeout=60_000)
    expect(page.locator("#training-state")).to_have_text("Succeeded", timeout=120_000)
    expect(page.locator("#training-metrics")).to_contain_text("accuracy")
    expect(page.locator("#training-result")).to_contain_text("fraud v2")
    shot(page, "registry-training-detail")

    page.locator("#training-result a").click()
    expect(page).to_have_url(f"{live_server.url}/projects/{project.slug}/models/fraud/v2/")
    expect(page.locator("#lineage")).to_contain_text("Training job")  # lineage: parent, training set, job
    expect(page.locator("#lineage")).to_contain_text("fraud v1")
    shot(page, "registry-training-new-version")

"""Feature store in a real browser: define an entity, upload a source (with an inline error first),
declare a view, make a feature set, build a training set in the worker and read its leakage report."""

import re

import pytest
from playwright.sync_api import expect

from tests.features.factories import csv_bytes, feature_rows, labels_frame

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_define_features_build_training_set_and_see_leakage_report(page, live_server, login, shot, project, users,
                                                                   celery_worker, tmp_path):
    source_csv = tmp_path / "transactions.csv"
    source_csv.write_bytes(csv_bytes(feature_rows(5, 24)))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    labels_csv = tmp_path / "labels.csv"

    class _S:  # labels_frame only needs .start
        from tests.features.factories import START as start
    labels_csv.write_bytes(csv_bytes(labels_frame(_S)))
    base = f"{live_server.url}/projects/{project.slug}/features/"

    login(page, users["data_scientist"])
    page.goto(base)
    expect(page.get_by_text("No feature views yet")).to_be_visible()
    shot(page, "features-catalog-empty")

    page.get_by_role("link", name="New entity").click()
    page.fill("#id_name", "customer")
    page.fill("#id_join_key", "customer_id")
    page.get_by_role("button", name="Create entity").click()
    expect(page.locator(".flash-success")).to_contain_text("customer")

    page.get_by_role("link", name="Upload source").click()
    page.fill("#id_name", "transactions")
    page.set_input_files("#id_file", str(empty))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#id_file_errors")).to_contain_text("empty")  # inline error, nothing stored
    shot(page, "features-source-upload-error")
    page.set_input_files("#id_file", str(source_csv))
    page.fill("#id_column_types", "customer_id:integer")   # a type that does not exist: inline error
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#id_column_types_errors")).to_contain_text("not one of string, int")
    page.set_input_files("#id_file", str(source_csv))
    page.fill("#id_column_types", "customer_id:string")    # declared: the keys are read as written
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".flash-success")).to_contain_text("120 rows")
    shot(page, "features-source-detail")

    page.goto(base + "views/new/")
    page.fill("#id_name", "customer_stats")
    page.select_option("#id_entity", "customer")
    page.select_option("#id_source", "transactions")
    page.fill("#id_timestamp_column", "event_timestamp")
    page.fill("#id_features", "amount: Amount spent in the hour\nn_tx: Transactions so far")
    page.fill("#id_availability_lag", "1h")
    page.fill("#id_ttl", "6h")
    page.check("#id_online")
    page.fill("#id_freshness_sla", "1d")
    page.fill("#id_tags", "payments")
    shot(page, "features-view-form")
    page.get_by_role("button", name="Create view").click()
    expect(page).to_have_url(re.compile(r"/views/customer_stats/$"))
    expect(page.get_by_text("Availability lag")).to_be_visible()
    page.wait_for_selector(".plotly-chart .main-svg")
    shot(page, "features-view-detail")

    page.goto(base + "sets/new/")
    page.fill("#id_name", "fraud-inputs")
    page.fill("#id_features", "customer_stats:amount\ncustomer_stats:n_tx")
    page.get_by_role("button", name="Create feature set").click()
    expect(page.get_by_text("can be served online")).to_be_visible()

    page.get_by_role("link", name="Build training set").click()
    page.fill("#id_name", "fraud-train")
    page.select_option("#id_feature_set", "fraud-inputs")
    page.set_input_files("#id_labels", str(labels_csv))
    page.get_by_role("button", name="Build training set").click()
    expect(page).to_have_url(re.compile(r"/training-sets/fraud-train/$"))
    expect(page.get_by_role("heading", name="Leakage report")).to_be_visible(timeout=60_000)
    leak = page.locator(".leakage-table")
    expect(leak).to_contain_text("amount")
    expect(leak.locator(".badge-bad").first).to_be_visible()  # values a latest-value join took from the future
    page.wait_for_selector("#trainingset-report .plotly-chart .main-svg")
    shot(page, "features-trainingset-report")

    page.goto(base + "?mode=online&tag=payments")
    expect(page.locator("#catalog-table")).to_contain_text("customer_stats")
    shot(page, "features-catalog")

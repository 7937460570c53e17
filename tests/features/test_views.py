"""The feature store pages render for members, forms show inline errors, catalog filters work."""

import io
from datetime import timedelta

import pytest
from django.urls import reverse

from apps.features.models import DataSource, FeatureView
from tests.features.factories import csv_bytes, feature_rows, make_feature_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(project, users):
    return make_feature_store(project=project, actor=users["owner"], ttl=timedelta(hours=6))


def test_catalog_lists_views_and_filters(store, project, users, logged_in_client):
    client = logged_in_client(users["analyst"])
    url = reverse("features:catalog", args=[project.slug])
    page = client.get(url)
    assert page.status_code == 200
    assert b"customer_stats" in page.content and b"fraud-inputs" in page.content
    assert client.get(url, {"mode": "batch"}, headers={"HX-Request": "true"}).content.count(b"customer_stats") == 0
    frag = client.get(url, {"tag": "payments", "q": "amount"}, headers={"HX-Request": "true"})
    assert b"customer_stats" in frag.content and b"<html" not in frag.content


def test_view_source_set_pages_render(store, project, users, logged_in_client):
    client = logged_in_client(users["analyst"])
    for name, args in [("features:view-detail", [store.view.name]), ("features:source-detail", ["transactions"]),
                       ("features:featureset-detail", [store.feature_set.name])]:
        resp = client.get(reverse(name, args=[project.slug, *args]))
        assert resp.status_code == 200, name
    resp = client.get(reverse("features:view-detail", args=[project.slug, store.view.name]))
    assert b"Availability lag" in resp.content and b"plotly-chart" in resp.content


def test_source_upload_form_shows_inline_error_for_empty_file(project, users, logged_in_client):
    client = logged_in_client(users["data_scientist"])
    f = io.BytesIO(b"")
    f.name = "empty.csv"
    resp = client.post(reverse("features:source-upload", args=[project.slug]), {"name": "tx", "file": f})
    assert resp.status_code == 422
    assert b"empty" in resp.content
    assert not DataSource.objects.filter(name="tx").exists()


def test_source_upload_page_creates_version(project, users, logged_in_client):
    client = logged_in_client(users["data_scientist"])
    f = io.BytesIO(csv_bytes(feature_rows(2, 3)))
    f.name = "tx.csv"
    resp = client.post(reverse("features:source-upload", args=[project.slug]), {"name": "tx", "file": f})
    assert resp.status_code == 302
    assert DataSource.objects.get(name="tx").latest_version.row_count == 6


def test_view_edit_of_used_view_creates_version(store, project, users, logged_in_client):
    client = logged_in_client(users["data_scientist"])
    url = reverse("features:view-edit", args=[project.slug, store.view.name])
    assert b"creates version 2" in client.get(url).content
    resp = client.post(url, {"entity": "customer", "source": "transactions", "timestamp_column": "event_timestamp",
                             "features": "amount\nn_tx", "availability_lag": "2h", "ttl": "6h"})
    assert resp.status_code == 302
    assert FeatureView.objects.get(name=store.view.name, is_current=True).version == 2


def test_analyst_cannot_open_upload_form(project, users, logged_in_client):
    resp = logged_in_client(users["analyst"]).get(reverse("features:source-upload", args=[project.slug]))
    assert resp.status_code == 403


def test_source_upload_form_declares_types_and_shows_refused_rows_inline(project, users, logged_in_client):
    client = logged_in_client(users["data_scientist"])
    url = reverse("features:source-upload", args=[project.slug])
    f = io.BytesIO(b"shop_id,event_timestamp,x,country\n007,2024-01-01T00:00:00Z,1,NA\n")
    f.name = "shops.csv"
    resp = client.post(url, {"name": "shops", "file": f, "column_types": "shop_id:string, x:float"})
    assert resp.status_code == 302
    v = DataSource.objects.get(name="shops").latest_version
    assert v.column_types["shop_id"] == "string" and v.column_types["x"] == "float" and v.stats["country"]["nulls"] == 0
    f = io.BytesIO(b"shop_id,event_timestamp,x,country\n007,2024-01-01T00:00:00Z,lots,NA\n")
    f.name = "shops.csv"
    resp = client.post(url, {"name": "shops", "file": f})
    assert resp.status_code == 422
    assert b"Column &#x27;x&#x27; is declared float but holds text: &#x27;lots&#x27; in row 1" in resp.content


def test_a_wide_source_upload_page_follows_the_background_job(project, users, logged_in_client, settings):
    from apps.projects.models import Job

    settings.FEATURES_UPLOAD_SYNC_MAX_COLUMNS = 3
    client = logged_in_client(users["data_scientist"])
    f = io.BytesIO(csv_bytes(feature_rows(2, 3)))   # 5 columns > 3
    f.name = "tx.csv"
    resp = client.post(reverse("features:source-upload", args=[project.slug]), {"name": "tx", "file": f})
    assert resp.status_code == 202
    job = Job.objects.get(kind="features.source_upload")
    assert f'id="job-{job.pk}"'.encode() in resp.content and b"hx-get" in resp.content   # the page polls it
    assert not DataSource.objects.filter(name="tx").exists()                             # nothing until it runs


def test_view_page_shows_each_versions_online_store(store, project, users, logged_in_client):
    from apps.features import services
    from apps.projects.models import Job

    services.feature_view_materialize(view=store.view, as_of=store.end)
    new = services.feature_view_update(view=store.view, actor=users["owner"], availability_lag="2h")
    assert Job.objects.filter(kind="features.materialize", params__view_ids=[new.pk]).exists()  # queued, visible
    page = logged_in_client(users["analyst"]).get(reverse("features:view-detail", args=[project.slug, new.name]))
    assert b"not materialized yet" in page.content and b"from transactions v1, 5 entities" in page.content
    assert b">stale</span>" not in page.content
    # a newer source version: v1's online values are stale until the queued re-materialization has run
    services.data_source_upload(project=project, actor=users["owner"], name="transactions",
                                upload=csv_bytes(feature_rows(5, 30)))
    page = logged_in_client(users["analyst"]).get(reverse("features:view-detail", args=[project.slug, new.name]))
    assert b"from transactions v1, 5 entities <span class=\"badge badge-warn\"" in page.content
    assert page.content.count(b">stale</span>") == 1

"""Feature store rules with a real database: sources, views, sets, labels, online store."""

import io
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from django.core.exceptions import PermissionDenied
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.common.errors import Conflict, InvalidInput
from apps.common.storage import artifact_store
from apps.features import services
from apps.features.models import DataSource, DataSourceVersion, FeatureView, TrainingSet
from apps.projects.models import AuditEvent, Job
from tests.features.factories import START, csv_bytes, feature_rows, labels_frame, make_feature_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(project, users):
    return make_feature_store(project=project, actor=users["owner"], ttl=timedelta(hours=6))


def _labels_csv(text: str) -> bytes:
    return text.strip().encode() + b"\n"


def _request(project, user, store, data: bytes, name="ts1", **kw):
    return services.training_set_request(project=project, actor=user, name=name, feature_set=store.feature_set,
                                         labels_upload=data, labels_filename="labels.csv", **kw)


# --- sources ------------------------------------------------------------------------------------


def test_upload_types_columns_stores_parquet_and_stats(project, users):
    v = services.data_source_upload(project=project, actor=users["data_scientist"], name="tx",
                                    upload=csv_bytes(feature_rows(3, 4)), filename="tx.csv")
    assert v.version == 1 and v.row_count == 12 and v.original_format == "csv"
    assert v.column_types == {"customer_id": "string", "event_timestamp": "datetime", "amount": "float",
                              "n_tx": "int", "country": "string"}
    assert v.stats["amount"]["max"] == 203.0 and v.stats["amount"]["hist"]["counts"]
    frame = pl.read_parquet(artifact_store().path(v.artifact_key))
    assert frame.schema["event_timestamp"] == pl.Datetime("us", "UTC")
    assert AuditEvent.objects.filter(verb="feature.source.upload", project=project).count() == 1


def test_upload_parquet_makes_a_new_immutable_version(project, users):
    actor = users["owner"]
    services.data_source_upload(project=project, actor=actor, name="tx", upload=csv_bytes(feature_rows(2, 2)))
    buf = io.BytesIO()
    feature_rows(2, 5).write_parquet(buf)
    v2 = services.data_source_upload(project=project, actor=actor, name="tx", upload=buf.getvalue(), filename="x.parquet")
    assert (v2.version, v2.row_count, v2.original_format) == (2, 10, "parquet")
    assert DataSourceVersion.objects.get(source__name="tx", version=1).row_count == 4


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"customer_id,amount\n", "no rows"),
    (b"\x00\x01\x02garbage\xff\xfe", "not a CSV or Parquet file"),
    (b"PAR1 but not really parquet", "could not be read as PARQUET"),
])
def test_bad_source_files_are_refused_and_nothing_is_stored(project, users, data, message):
    before = set(artifact_store().root.rglob("*")) if artifact_store().root.exists() else set()
    with pytest.raises(InvalidInput, match=message) as err:
        services.data_source_upload(project=project, actor=users["owner"], name="tx", upload=data, filename="f.csv")
    assert err.value.errors[0]["field"] == "file"
    assert not DataSource.objects.filter(name="tx").exists()
    after = set(artifact_store().root.rglob("*")) if artifact_store().root.exists() else set()
    assert after == before


def test_type_change_between_versions_is_refused_naming_the_column(project, users):
    actor = users["owner"]
    services.data_source_upload(project=project, actor=actor, name="tx", upload=csv_bytes(feature_rows(2, 2)))
    changed = feature_rows(2, 2).with_columns(pl.col("n_tx").cast(pl.String) + "x")
    # the first version declared n_tx an int: the next one is read as such, and text is refused naming rows
    with pytest.raises(InvalidInput, match="Column 'n_tx' is declared int but holds values that are not integers: "
                                           "'0x' in row 1") as err:
        services.data_source_upload(project=project, actor=actor, name="tx", upload=csv_bytes(changed))
    assert err.value.errors[0]["column"] == "n_tx" and err.value.errors[0]["rows"][0] == 1
    assert DataSourceVersion.objects.filter(source__name="tx").count() == 1


def test_new_version_may_not_drop_a_column_a_view_reads(store, project, users):
    with pytest.raises(InvalidInput, match="'n_tx'"):
        services.data_source_upload(project=project, actor=users["owner"], name="transactions",
                                    upload=csv_bytes(feature_rows(2, 2).drop("n_tx")))


def test_analyst_cannot_upload(project, users):
    with pytest.raises(PermissionDenied):
        services.data_source_upload(project=project, actor=users["analyst"], name="tx", upload=b"a,b\n1,2\n")


# --- views and sets -------------------------------------------------------------------------------


def test_view_validation_names_the_column(store, project, users):
    with pytest.raises(InvalidInput, match="no column 'when'") as err:
        services.feature_view_create(project=project, actor=users["owner"], name="v2", entity=store.entity,
                                     source=store.source, timestamp_column="when", features=["amount"])
    assert err.value.errors[0]["field"] == "timestamp_column"
    with pytest.raises(InvalidInput, match="must hold timestamps"):
        services.feature_view_create(project=project, actor=users["owner"], name="v2", entity=store.entity,
                                     source=store.source, timestamp_column="amount", features=["n_tx"])
    with pytest.raises(InvalidInput, match="duration"):
        services.feature_view_create(project=project, actor=users["owner"], name="v2", entity=store.entity,
                                     source=store.source, timestamp_column="event_timestamp", features=["n_tx"],
                                     availability_lag="soon")


def test_editing_a_used_view_creates_a_new_version_and_keeps_the_old(store, project, users):
    new = services.feature_view_update(view=store.view, actor=users["owner"], availability_lag="3h")
    assert new.version == 2 and new.is_current and new.availability_lag == timedelta(hours=3)
    old = FeatureView.objects.get(pk=store.view.pk)
    assert not old.is_current and old.availability_lag == timedelta(hours=1)
    # the feature set still points at version 1
    assert {it.feature.view.version for it in store.feature_set.ordered_items} == {1}


def test_editing_an_unused_view_changes_it_in_place(project, users):
    store = make_feature_store(project=project, actor=users["owner"])
    unused = services.feature_view_create(project=project, actor=users["owner"], name="spare", entity=store.entity,
                                          source=store.source, timestamp_column="event_timestamp", features=["amount"])
    same = services.feature_view_update(view=unused, actor=users["owner"], ttl="2d")
    assert same.pk == unused.pk and same.version == 1 and same.ttl == timedelta(days=2)


def test_feature_set_with_batch_only_feature_is_marked_and_refused_online(store, project, users):
    batch = services.feature_view_create(project=project, actor=users["owner"], name="country_view",
                                         entity=store.entity, source=store.source, timestamp_column="event_timestamp",
                                         features=["country"], online=False)
    assert batch.online is False
    fs = services.feature_set_create(project=project, actor=users["owner"], name="mixed",
                                     references=["customer_stats:amount", "country_view:country"])
    assert fs.has_batch_only and fs.batch_only_features == ["country_view:country"]
    with pytest.raises(InvalidInput, match="country_view:country is batch-only"):
        services.feature_set_online_check(feature_set=fs)
    services.feature_set_online_check(feature_set=store.feature_set)  # all online: no error


def test_feature_set_references_are_checked(store, project, users):
    with pytest.raises(InvalidInput, match="no feature 'nope'"):
        services.feature_set_create(project=project, actor=users["owner"], name="x", references=["customer_stats:nope"])
    with pytest.raises(InvalidInput, match="both be called 'amount'"):
        services.feature_set_create(project=project, actor=users["owner"], name="x",
                                    references=["customer_stats:amount", "customer_stats@1:amount"])
    fs = services.feature_set_create(project=project, actor=users["owner"], name="x",
                                     references=["customer_stats:amount", "customer_stats@1:amount as amount_again"])
    assert fs.output_names == ["amount", "amount_again"]


def test_used_feature_set_cannot_change(store, project, users):
    _request(project, users["owner"], store, _labels_csv("customer_id,event_timestamp,y\nc1,2024-01-01T05:00:00,1"))
    with pytest.raises(Conflict, match="create a new feature set"):
        services.feature_set_update(feature_set=store.feature_set, actor=users["owner"],
                                    references=["customer_stats:amount"])


# --- label files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("csv, message", [
    ("event_timestamp,y\n2024-01-01,1", "no column 'customer_id' \\(the entity key\\)"),
    ("customer_id,y\nc1,1", "no column 'event_timestamp' \\(the event timestamp\\)"),
    ("customer_id,event_timestamp,y\nc1,2024-01-01,1\nc2,not a date,0", "'event_timestamp'.*'not a date'"),
    ("customer_id,event_timestamp,y\nc1,2024-01-01,1\nc1,2024-01-01,0", "2 duplicate rows on \\(customer_id, event_timestamp\\)"),
    ("", "empty"),
    ("customer_id,event_timestamp\nc1,2024-01-01", "no label column"),
    ("customer_id,event_timestamp,amount\nc1,2024-01-01,1", "'amount' has the name of a feature"),
])
def test_bad_label_files_are_refused_naming_the_column_and_nothing_is_stored(store, project, users, csv, message):
    jobs = Job.objects.count()
    with pytest.raises(InvalidInput, match=message) as err:
        _request(project, users["data_scientist"], store, csv.encode())
    assert err.value.errors[0]["field"] == "labels"
    assert not TrainingSet.objects.exists() and Job.objects.count() == jobs


def test_training_set_build_frame_keeps_every_label_row(store):
    labels = labels_frame(store)
    frame = services.training_set_build_frame(feature_set=store.feature_set, labels=labels.to_pandas(),
                                              timestamp_column="event_timestamp")
    assert frame.height == labels.height
    assert frame.columns == ["customer_id", "event_timestamp", "is_fraud", "amount", "n_tx"]
    row = frame.filter((pl.col("customer_id") == "c2") & (pl.col("event_timestamp") == START + timedelta(hours=9, minutes=30)))
    assert row.get_column("amount").to_list() == [208.0]  # 08:00 is available at 09:00 (lag 1h); 09:00 not yet
    assert frame.filter(pl.col("customer_id") == "c5").get_column("amount").null_count() == 8  # unknown entity


def test_the_join_reads_only_the_source_columns_its_views_use(store):
    spec = services.view_spec(store.view)
    frame = services.data_source_frame(version=store.source_version, columns=[*spec.columns(), "not_in_the_file"])
    assert frame.columns == ["customer_id", "event_timestamp", "amount", "n_tx"]  # no "country"; a missing name skipped
    assert frame.equals(services.data_source_frame(version=store.source_version).select(frame.columns))


def test_training_set_build_runs_synchronously_through_the_job_body(store, project, users):
    ts = _request(project, users["data_scientist"], store, csv_bytes(labels_frame(store)))
    services.training_set_build_run(job=ts.job)
    ts.refresh_from_db()
    assert ts.status == "ready" and ts.row_count == labels_frame(store).height
    assert ts.sha256 and artifact_store().exists(ts.artifact_key)
    assert set(ts.null_rates) == {"amount", "n_tx"} and ts.label_balance["is_fraud"]["kind"] == "classes"
    assert ts.leakage["features"]["amount"]["latest_from_future"] > 0
    assert ts.source_versions.count() == 1


# --- online store ---------------------------------------------------------------------------------


def test_online_lookup_values_event_times_and_flags(store):
    services.feature_view_materialize(view=store.view, as_of=START + timedelta(hours=10))
    res = services.online_features_get(feature_set=store.feature_set, entity_keys=["c1", "nobody"],
                                       now=START + timedelta(hours=10))
    assert res[0]["values"] == {"amount": 109.0, "n_tx": 9}
    assert res[0]["event_times"]["amount"] == START + timedelta(hours=9) and res[0]["status"]["n_tx"] == "ok"
    assert res[1]["values"] == {"amount": None, "n_tx": None} and res[1]["status"]["amount"] == "missing"
    later = services.online_features_get(feature_set=store.feature_set, entity_keys=[{"customer_id": "c1"}],
                                         now=START + timedelta(hours=16))
    assert later[0]["values"]["amount"] is None and later[0]["status"]["amount"] == "expired"


def test_online_lookup_keys_of_any_text_and_results_in_key_order(store):
    """Keys travel to PostgreSQL as one separated string; a key holding the separator (or a comma, a
    quote, non-ASCII) takes the array form and is still answered, each result in the order asked."""
    services.feature_view_materialize(view=store.view, as_of=START + timedelta(hours=10))
    keys = ["c2", "we\x1fird", "c1", 'a,"b"', "ünï", "c1"]
    res = services.online_features_get(feature_set=store.feature_set, entity_keys=keys,
                                       now=START + timedelta(hours=10))
    assert [r["entity"]["customer_id"] for r in res] == keys
    assert [r["status"]["amount"] for r in res] == ["ok", "missing", "ok", "missing", "missing", "ok"]
    assert res[0]["values"]["amount"] == 209.0 and res[2]["values"] == res[5]["values"] == {"amount": 109.0, "n_tx": 9}
    assert res[0]["values"] is not res[2]["values"] and res[2]["status"] is not res[5]["status"]  # never shared
    clean = services.online_features_get(feature_set=store.feature_set, entity_keys=["c2", 'a,"b"', "c1"],
                                         now=START + timedelta(hours=10))
    assert [r["values"] for r in clean] == [res[0]["values"], res[3]["values"], res[2]["values"]]


def test_online_rows_answer_the_same_with_or_without_their_prerendered_payload(store):
    from apps.features.models import OnlineFeatureValue

    services.feature_view_materialize(view=store.view, as_of=START + timedelta(hours=10))
    keys, as_of = ["c1", "c2", "nobody"], START + timedelta(hours=10)
    before = services.online_features_get(feature_set=store.feature_set, entity_keys=keys, now=as_of)
    assert OnlineFeatureValue.objects.exclude(payload="").count() == OnlineFeatureValue.objects.count() > 0
    OnlineFeatureValue.objects.filter(entity_key="c1").update(payload="")  # a row written before the column
    assert services.online_features_get(feature_set=store.feature_set, entity_keys=keys, now=as_of) == before


def test_materialization_refuses_batch_views_and_reports_freshness(store, project, users):
    batch = services.feature_view_create(project=project, actor=users["owner"], name="b", entity=store.entity,
                                         source=store.source, timestamp_column="event_timestamp", features=["n_tx"],
                                         freshness_sla="1h")
    with pytest.raises(InvalidInput, match="batch-only"):
        services.feature_view_materialize(view=batch, as_of=START)
    fresh = services.feature_view_freshness(view=batch, now=START + timedelta(hours=23, minutes=30))
    assert fresh["newest"] == START + timedelta(hours=23) and not fresh["breached"]
    assert services.feature_view_freshness(view=batch, now=START + timedelta(days=2))["breached"]


def test_scheduled_materialization_starts_jobs_for_due_views(store):
    FeatureView.objects.filter(pk=store.view.pk).update(materialize_every=timedelta(minutes=5))
    started = services.feature_view_materialize_due(now=datetime.now(UTC))
    assert len(started) == 1 and Job.objects.get(pk=started[0]).params["view_id"] == store.view.pk
    assert services.feature_view_materialize_due(now=datetime.now(UTC)) == []  # one already queued


_COUNTER = [0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_online_lookup_at_t_equals_offline_join_for_an_event_at_t(project, users, data):
    """One code path: materialize at T, look up at T == the point-in-time join of a label at T."""
    from apps.features.models import Entity

    owner = users["owner"]
    n = data.draw(st.integers(1, 30))
    rows = data.draw(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 48), st.integers(-50, 50)),
                              min_size=n, max_size=n))
    lag = data.draw(st.integers(0, 6))
    ttl = data.draw(st.one_of(st.none(), st.integers(0, 12)))
    t = START + timedelta(hours=data.draw(st.integers(0, 50)), minutes=data.draw(st.sampled_from([0, 30])))
    frame = pl.DataFrame({"k": [r[0] for r in rows], "ts": [START + timedelta(hours=r[1]) for r in rows],
                          "x": [r[2] for r in rows]})
    _COUNTER[0] += 1
    suffix = str(_COUNTER[0])
    entity = Entity.objects.filter(project=project, name="k").first() or services.entity_create(
        project=project, actor=owner, name="k", join_key="k")
    src = services.data_source_upload(project=project, actor=owner, name=f"s{suffix}", upload=csv_bytes(frame)).source
    view = services.feature_view_create(project=project, actor=owner, name=f"v{suffix}", entity=entity, source=src,
                                        timestamp_column="ts", features=["x"], availability_lag=timedelta(hours=lag),
                                        ttl=timedelta(hours=ttl) if ttl is not None else None, online=True)
    fs = services.feature_set_create(project=project, actor=owner, name=f"fs{suffix}", references=[f"v{suffix}:x"])
    services.feature_view_materialize(view=view, as_of=t)
    keys = ["a", "b", "c", "zz"]
    online = services.online_features_get(feature_set=fs, entity_keys=keys, now=t)
    offline = services.training_set_build_frame(feature_set=fs, labels=pl.DataFrame({"k": keys, "when": [t] * 4, "y": [0] * 4}),
                                                timestamp_column="when")
    assert [r["values"]["x"] for r in online] == offline.get_column("x").to_list()
    # as_of answers from the offline store with the join itself: the same values and statuses
    at = services.online_features_get(feature_set=fs, entity_keys=keys, as_of=t)
    assert [r["values"]["x"] for r in at] == offline.get_column("x").to_list()
    assert [r["status"] for r in at] == [r["status"] for r in online]


def test_redis_online_store_when_configured(store, settings, project, users):
    import redis

    url = "redis://127.0.0.1:6379/3"
    try:
        redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    settings.FEATURES_ONLINE_REDIS_URL = url
    from apps.features.online import online_store

    assert online_store().name == "redis"
    services.feature_view_materialize(view=store.view, as_of=START + timedelta(hours=10))
    res = services.online_features_get(feature_set=store.feature_set, entity_keys=["c1", "nobody"],
                                       now=START + timedelta(hours=10))
    assert res[0]["values"] == {"amount": 109.0, "n_tx": 9} and res[0]["event_times"]["amount"] == START + timedelta(hours=9)
    assert res[1]["status"]["amount"] == "missing"
    # a newer source version not materialized yet: the Redis path says stale too (from the database)
    services.data_source_upload(project=project, actor=users["owner"], name="transactions",
                                upload=csv_bytes(feature_rows(5, 30)))
    res = services.online_features_get(feature_set=store.feature_set, entity_keys=["c1", "nobody"],
                                       now=START + timedelta(hours=10))
    assert res[0]["status"] == {"amount": "stale", "n_tx": "stale"} and res[0]["values"]["amount"] == 109.0
    assert res[1]["status"]["amount"] == "stale"
    online_store().clear(view=store.view)
    settings.FEATURES_ONLINE_REDIS_URL = ""
    assert online_store().name == "database"


def test_freshness_list_for_monitoring(store, project):
    from apps.features.selectors import feature_view_freshness_list

    rows = feature_view_freshness_list(project=project)
    assert rows[0]["view"] == "customer_stats" and rows[0]["breached"] is True  # data from 2024, SLA 1 day

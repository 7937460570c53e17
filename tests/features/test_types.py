"""Declared types are the law on every upload path (API, CSV and Parquet), online equals offline after a
view is edited, and as_of means as-of."""

import io
from datetime import timedelta

import polars as pl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.common.errors import InvalidInput
from apps.features import services
from apps.features.models import DataSourceVersion, TrainingSet
from apps.features.selectors import data_source_get
from tests.features.factories import START, csv_bytes, feature_rows, make_feature_store

pytestmark = pytest.mark.django_db
BASE = "/api/v1/projects/fraud"


def parquet_bytes(columns: dict, names: list[str] | None = None) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table([pa.array(v) for v in columns.values()], names=names or list(columns))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def upload(fmt: str, csv_text: str, columns: dict, names: list[str] | None = None) -> SimpleUploadedFile:
    if fmt == "csv":
        return SimpleUploadedFile("f.csv", csv_text.strip().encode() + b"\n", content_type="text/csv")
    return SimpleUploadedFile("f.parquet", parquet_bytes(columns, names), content_type="application/octet-stream")


def _ts(n: int) -> list[str]:
    return [(START + timedelta(hours=i)).isoformat() for i in range(n)]


@pytest.fixture
def int_store(project, users):
    """An int entity ``account`` (key ``account_id``) with a view ``acct`` over source ``acct-src``."""
    owner = users["owner"]
    entity = services.entity_create(project=project, actor=owner, name="account", join_key="account_id",
                                    value_type="int")
    frame = pl.DataFrame({"account_id": [1, 2, 1, 2], "event_timestamp": [START, START, START + timedelta(hours=2),
                                                                            START + timedelta(hours=2)],
                          "bal": [10.0, 20.0, 11.0, 21.0]})
    src = services.data_source_upload(project=project, actor=owner, name="acct-src", upload=csv_bytes(frame)).source
    view = services.feature_view_create(project=project, actor=owner, name="acct", entity=entity, source=src,
                                        timestamp_column="event_timestamp", features=["bal"], online=True)
    fs = services.feature_set_create(project=project, actor=owner, name="acct-set", references=["acct:bal"])
    return {"entity": entity, "source": src, "view": view, "feature_set": fs}


# --- sources -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_source_with_duplicate_column_names_is_refused_also_as_a_new_version_of_a_source_in_use(
        fmt, project, users, api_client):
    store = make_feature_store(project=project, actor=users["owner"])
    c = api_client(users["data_scientist"])
    for name in ("fresh", store.source.name):
        f = upload(fmt, "customer_id,amt,amt\nc1,1,2", {"a": ["c1"], "b": [1], "c": [2]},
                   names=["customer_id", "amt", "amt"])
        r = c.post(f"{BASE}/sources/{name}/versions", {"file": f})
        assert r.status_code == 422, r.content
        assert "two columns named 'amt'" in r.json()["detail"] and r.json()["errors"][0]["column"] == "amt"
    assert DataSourceVersion.objects.filter(source__name="fresh").count() == 0
    assert DataSourceVersion.objects.filter(source=store.source).count() == 1


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_source_na_is_a_string_and_null_tokens_are_per_upload(fmt, project, users, api_client):
    c = api_client(users["data_scientist"])
    data = ("k,t,country\na,2024-01-01T00:00:00Z,NA\nb,2024-01-01T00:00:00Z,US",
            {"k": ["a", "b"], "t": ["2024-01-01T00:00:00Z"] * 2, "country": ["NA", "US"]})
    r = c.post(f"{BASE}/sources/geo/versions", {"file": upload(fmt, *data)})
    assert r.status_code == 201, r.content
    assert r.json()["stats"]["country"]["nulls"] == 0
    r = c.post(f"{BASE}/sources/geo/versions", {"file": upload(fmt, *data), "null_values": "NA"})
    assert r.status_code == 201 and r.json()["stats"]["country"]["nulls"] == 1


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_source_declared_numeric_column_holding_text_is_refused_naming_the_column(fmt, project, users, api_client):
    c = api_client(users["data_scientist"])
    good = upload(fmt, "k,amount\na,1.5", {"k": ["a"], "amount": [1.5]})
    assert c.post(f"{BASE}/sources/s/versions", {"file": good}).status_code == 201
    bad = upload(fmt, "k,amount\na,1.5\nb,lots", {"k": ["a", "b"], "amount": ["1.5", "lots"]})
    r = c.post(f"{BASE}/sources/s/versions", {"file": bad})
    assert r.status_code == 422
    assert r.json()["detail"] == "Column 'amount' is declared float but holds text: 'lots' in row 2"
    assert r.json()["errors"][0]["rows"] == [2]
    r = c.post(f"{BASE}/sources/t/versions", {"file": upload(fmt, "k,amount\na,x", {"k": ["a"], "amount": ["x"]}),
                                             "column_types": "amount:float"})
    assert r.status_code == 422 and "'amount' is declared float" in r.json()["detail"]
    r = c.post(f"{BASE}/sources/s/versions", {"file": good, "column_types": '{"amount": "int"}'})
    assert r.status_code == 422 and "Column 'amount' of source 's' is float" in r.json()["detail"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_string_entity_keys_keep_leading_zeros_and_int_columns_are_refused_for_them(fmt, project, users, api_client):
    owner = users["owner"]
    entity = services.entity_create(project=project, actor=owner, name="shop", join_key="shop_id")  # string
    c = api_client(users["data_scientist"])
    data = ("shop_id,event_timestamp,x\n007,2024-01-01T00:00:00Z,1\n7,2024-01-01T00:00:00Z,2",
            {"shop_id": [7, 7], "event_timestamp": ["2024-01-01T00:00:00Z"] * 2, "x": [1, 2]})
    if fmt == "csv":  # a CSV of numeric-looking keys: "007" is text, so the column is a string column anyway
        data = ("shop_id,event_timestamp,x\n8,2024-01-01T00:00:00Z,1\n7,2024-01-01T00:00:00Z,2", data[1])
    assert c.post(f"{BASE}/sources/shops/versions", {"file": upload(fmt, *data)}).status_code == 201
    src = data_source_get(project=project, name="shops")
    assert src.latest_version.column_types["shop_id"] == "int"
    with pytest.raises(InvalidInput, match="holds int values, but entity 'shop' has string keys"):
        services.feature_view_create(project=project, actor=owner, name="v", entity=entity, source=src,
                                     timestamp_column="event_timestamp", features=["x"])
    # declared: the keys stay as written
    declared = ("shop_id,event_timestamp,x\n007,2024-01-01T00:00:00Z,1\n7,2024-01-01T00:00:00Z,2",
                {"shop_id": ["007", "7"], "event_timestamp": ["2024-01-01T00:00:00Z"] * 2, "x": [1, 2]})
    r = c.post(f"{BASE}/sources/shops2/versions", {"file": upload(fmt, *declared), "column_types": "shop_id:string"})
    assert r.status_code == 201, r.content
    src2 = data_source_get(project=project, name="shops2")
    view = services.feature_view_create(project=project, actor=owner, name="v2", entity=entity, source=src2,
                                        timestamp_column="event_timestamp", features=["x"], online=True)
    fs = services.feature_set_create(project=project, actor=owner, name="shops", references=["v2:x"])
    services.feature_view_materialize(view=view, as_of=START + timedelta(hours=1))
    res = services.online_features_get(feature_set=fs, entity_keys=["007", "7", 7], now=START + timedelta(hours=1))
    assert [r["values"]["x"] for r in res] == [1, 2, 2]


# --- labels --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_decimal_label_keys_for_an_int_entity_are_refused_naming_rows(fmt, int_store, users, api_client):
    c = api_client(users["data_scientist"])
    f = upload(fmt, "account_id,event_timestamp,y\n1.9,2024-01-01T05:00:00Z,1\n2.7,2024-01-01T05:00:00Z,0",
               {"account_id": [1.9, 2.7], "event_timestamp": ["2024-01-01T05:00:00Z"] * 2, "y": [1, 0]})
    r = c.post(f"{BASE}/training-sets", {"labels": f, "name": "t1", "feature_set": "acct-set"})
    assert r.status_code == 422, r.content
    assert "Column 'account_id' is declared int but holds non-integral numbers" in r.json()["detail"]
    assert r.json()["errors"][0]["rows"] == [1, 2]
    assert not TrainingSet.objects.filter(name="t1").exists()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_mixed_type_label_keys_are_refused_at_upload_naming_column_and_rows(fmt, int_store, users, api_client):
    c = api_client(users["data_scientist"])
    f = upload(fmt, "account_id,event_timestamp,y\n1,2024-01-01T05:00:00Z,1\nabc,2024-01-01T05:00:00Z,0",
               {"account_id": ["1", "abc"], "event_timestamp": ["2024-01-01T05:00:00Z"] * 2, "y": [1, 0]})
    r = c.post(f"{BASE}/training-sets", {"labels": f, "name": "t1", "feature_set": "acct-set"})
    assert r.status_code == 422
    assert r.json()["detail"] == ("Column 'account_id' is declared int but holds values that are not integers: "
                                  "'abc' in row 2")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_label_files_with_duplicate_columns_are_refused(fmt, int_store, users, api_client):
    c = api_client(users["data_scientist"])
    f = upload(fmt, "account_id,event_timestamp,y,y\n1,2024-01-01T05:00:00Z,1,0",
               {"a": [1], "b": ["2024-01-01T05:00:00Z"], "c": [1], "d": [0]},
               names=["account_id", "event_timestamp", "y", "y"])
    r = c.post(f"{BASE}/training-sets", {"labels": f, "name": "t1", "feature_set": "acct-set"})
    assert r.status_code == 422 and "two columns named 'y'" in r.json()["detail"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_string_label_keys_007_and_7_are_two_entities(fmt, project, users):
    owner = users["owner"]
    entity = services.entity_create(project=project, actor=owner, name="shop", join_key="shop_id")
    rows = csv_bytes(pl.DataFrame({"shop_id": ["007", "7"], "event_timestamp": [START, START], "x": [1.0, 2.0]}))
    src = services.data_source_upload(project=project, actor=owner, name="shops", upload=rows,
                                      column_types={"shop_id": "string"}).source
    services.feature_view_create(project=project, actor=owner, name="v", entity=entity, source=src,
                                 timestamp_column="event_timestamp", features=["x"])
    fs = services.feature_set_create(project=project, actor=owner, name="fs", references=["v:x"])
    labels = upload(fmt, "shop_id,event_timestamp,y\n007,2024-01-01T05:00:00Z,1\n7,2024-01-01T05:00:00Z,0",
                    {"shop_id": ["007", "7"], "event_timestamp": ["2024-01-01T05:00:00Z"] * 2, "y": [1, 0]})
    ts = services.training_set_request(project=project, actor=owner, name="t", feature_set=fs,
                                       labels_upload=labels.read(), labels_filename=labels.name)
    assert ts.label_row_count == 2  # not refused as duplicates
    out = services.training_set_build_frame(feature_set=fs, labels=pl.DataFrame(
        {"shop_id": ["007", "7"], "event_timestamp": [START + timedelta(hours=5)] * 2, "y": [1, 0]}),
        timestamp_column="event_timestamp")
    assert out.get_column("x").to_list() == [1.0, 2.0]


def test_online_lookup_refuses_non_integral_keys_for_an_int_entity(int_store, users, api_client):
    c = api_client(users["data_scientist"])
    services.feature_view_materialize(view=int_store["view"], as_of=START + timedelta(hours=5))
    r = c.post(f"{BASE}/feature-sets/acct-set/online", {"entity_keys": [1, "2", 1.0]}, content_type="application/json")
    assert r.status_code == 200 and [x["values"]["bal"] for x in r.json()["results"]] == [11.0, 21.0, 11.0]
    r = c.post(f"{BASE}/feature-sets/acct-set/online", {"entity_keys": [1, 1.5]}, content_type="application/json")
    assert r.status_code == 422 and r.json()["detail"] == "entity_keys[1]: 1.5 is not an integer key (never truncated)"


def test_notebook_labels_with_float_keys_are_not_truncated(int_store):
    import pandas as pd

    labels = pd.DataFrame({"account_id": [1.0, 2.0], "event_timestamp": [START + timedelta(hours=5)] * 2})
    out = services.training_set_build_frame(feature_set=int_store["feature_set"], labels=labels,
                                            timestamp_column="event_timestamp")
    assert out.get_column("bal").to_list() == [11.0, 21.0]
    with pytest.raises(InvalidInput, match="non-integral"):
        services.training_set_build_frame(feature_set=int_store["feature_set"], labels=pd.DataFrame(
            {"account_id": [1.9], "event_timestamp": [START]}), timestamp_column="event_timestamp")


# --- online equals offline after a view edit -------------------------------------------------------------


def _offline(fs, keys, t):
    frame = services.training_set_build_frame(feature_set=fs, labels=pl.DataFrame(
        {"customer_id": keys, "event_timestamp": [t] * len(keys)}), timestamp_column="event_timestamp")
    return frame.drop("customer_id", "event_timestamp").to_dicts()


def test_view_edit_new_source_version_materialize_online_equals_offline_on_both_versions(project, users, api_client):
    owner = users["owner"]
    store = make_feature_store(project=project, actor=owner, ttl=timedelta(days=1000))
    old_set = store.feature_set                                   # reads customer_stats v1
    c = api_client(users["data_scientist"])
    r = c.patch(f"{BASE}/feature-views/customer_stats", {"availability_lag": "3h"}, content_type="application/json")
    assert r.status_code == 200 and r.json()["version"] == 2
    new_set = services.feature_set_create(project=project, actor=owner, name="fraud-v2",
                                          references=["customer_stats:amount", "customer_stats:n_tx"])
    # a newer source version: 24 more hours with other values
    newer = feature_rows(5, 48).with_columns(pl.col("amount") * 10)
    services.data_source_upload(project=project, actor=owner, name="transactions", upload=csv_bytes(newer))
    t = START + timedelta(hours=47, minutes=30)
    for v in services.feature_view_versions_in_use(view=store.view):
        services.feature_view_materialize(view=v, as_of=t)
    keys = ["c0", "c1", "c4", "nobody"]
    for fs in (old_set, new_set):
        online = services.online_features_get(feature_set=fs, entity_keys=keys, now=t)
        assert [r["values"] for r in online] == _offline(fs, keys, t)
        assert services.online_features_get(feature_set=fs, entity_keys=keys, as_of=t) == online
    v1 = services.online_features_get(feature_set=old_set, entity_keys=["c1"], now=t)[0]
    v2 = services.online_features_get(feature_set=new_set, entity_keys=["c1"], now=t)[0]
    assert v1["values"]["n_tx"] == 46 and v2["values"]["n_tx"] == 44   # lag 1h vs 3h, from the newer data


def _lookup(client, keys, name="fraud-inputs"):
    r = client.post(f"{BASE}/feature-sets/{name}/online", {"entity_keys": keys}, content_type="application/json")
    assert r.status_code == 200, r.content
    return r.json()["results"]


def test_a_new_source_version_makes_online_values_stale_until_rematerialized(project, users, api_client):
    """Between a new source version and its re-materialization the lookup never answers the old values as
    ``ok``: they come back ``stale``; after the materialization they are ``ok`` and equal the offline join."""
    owner = users["owner"]
    store = make_feature_store(project=project, actor=owner)          # no TTL: the lookup's "now" is irrelevant
    t = START + timedelta(hours=47, minutes=30)
    services.feature_view_materialize(view=store.view, as_of=t)
    c = api_client(users["data_scientist"])
    keys = ["c1", "c4", "nobody"]
    before = _lookup(c, keys)
    assert [r["status"]["amount"] for r in before] == ["ok", "ok", "missing"]
    assert before[0]["values"] == {"amount": 123.0, "n_tx": 23}
    newer = feature_rows(5, 48).with_columns(pl.col("amount") * 10)  # v2: 24 more hours, other values
    up = SimpleUploadedFile("tx.csv", csv_bytes(newer), content_type="text/csv")
    assert c.post(f"{BASE}/sources/transactions/versions", {"file": up}).status_code == 201
    stale = _lookup(c, keys)
    assert [r["status"] for r in stale] == [{"amount": "stale", "n_tx": "stale"}] * 3
    assert [r["values"] for r in stale] == [r["values"] for r in before]  # the last materialization's, flagged
    services.feature_view_materialize(view=store.view, as_of=t)        # what the queued job runs
    after = _lookup(c, keys)
    assert [r["status"]["n_tx"] for r in after] == ["ok", "ok", "missing"]
    assert [r["values"] for r in after] == _offline(store.feature_set, keys, t)
    assert after[0]["values"] == {"amount": 1460.0, "n_tx": 46}


def test_an_edited_or_never_materialized_view_is_stale(project, users, api_client):
    owner = users["owner"]
    store = make_feature_store(project=project, actor=owner)
    c = api_client(users["data_scientist"])
    assert _lookup(c, ["c1"])[0]["status"] == {"amount": "stale", "n_tx": "stale"}  # never materialized
    services.feature_view_materialize(view=store.view, as_of=store.end)
    assert _lookup(c, ["c1"])[0]["status"] == {"amount": "ok", "n_tx": "ok"}
    # a second, unused view edited in place after its materialization: its values follow the old definition
    other = services.feature_view_create(project=project, actor=owner, name="counts", entity=store.entity,
                                         source=store.source, timestamp_column="event_timestamp",
                                         features=["n_tx"], online=True)
    services.feature_view_materialize(view=other, as_of=store.end)
    both = services.feature_set_create(project=project, actor=owner, name="both",
                                       references=["customer_stats:amount", "counts:n_tx as n"])
    assert _lookup(c, ["c1"], "both")[0]["status"] == {"amount": "ok", "n": "ok"}
    services.feature_set_update(feature_set=both, actor=owner, references=["customer_stats:amount"])
    services.feature_view_update(view=other, actor=owner, availability_lag="5h")      # unused now: in place
    from apps.projects.models import Job

    job = Job.objects.filter(kind="features.materialize").latest("created_at")      # visible re-materialization
    assert job.params["view_ids"] == [other.pk] and job.title == "Re-materialize counts v1 (edited)"
    services.feature_set_update(feature_set=both, actor=owner, references=["customer_stats:amount",
                                                                           "counts:n_tx as n"])
    res = _lookup(c, ["c1", "nobody"], "both")
    assert [r["status"] for r in res] == [{"amount": "ok", "n": "stale"}, {"amount": "missing", "n": "stale"}]
    assert res[0]["values"] == {"amount": 123.0, "n": 23}                  # lag 1h's value, flagged stale
    other.refresh_from_db()
    services.feature_view_materialize(view=other, as_of=store.end)
    res = _lookup(c, ["c1"], "both")[0]
    assert res["status"] == {"amount": "ok", "n": "ok"} and res["values"] == {"amount": 123.0, "n": 19}


def test_materialize_api_honours_the_version_and_defaults_to_every_version_in_use(project, users, api_client):
    from apps.projects.models import Job

    store = make_feature_store(project=project, actor=users["owner"])
    services.feature_view_update(view=store.view, actor=users["owner"], availability_lag="2h")
    c = api_client(users["data_scientist"])
    r = c.post(f"{BASE}/feature-views/customer_stats/materialize?version=1")
    assert r.status_code == 202
    assert Job.objects.get(pk=r.json()["job_id"]).params["view_ids"] == [store.view.pk]
    r = c.post(f"{BASE}/feature-views/customer_stats/materialize")
    ids = Job.objects.get(pk=r.json()["job_id"]).params["view_ids"]
    assert len(ids) == 2 and store.view.pk in ids
    assert c.post(f"{BASE}/feature-views/customer_stats/materialize?version=9").status_code == 404


def test_a_new_source_version_queues_rematerialization_of_every_online_version_in_use(project, users):
    from apps.projects.models import Job

    store = make_feature_store(project=project, actor=users["owner"])
    new = services.feature_view_update(view=store.view, actor=users["owner"], availability_lag="2h")
    services.data_source_upload(project=project, actor=users["owner"], name="transactions",
                                upload=csv_bytes(feature_rows(5, 30)))
    job = Job.objects.filter(kind="features.materialize").latest("created_at")
    assert sorted(job.params["view_ids"]) == sorted([store.view.pk, new.pk]) and "transactions v2" in job.title


# --- as_of and the TTL boundary ------------------------------------------------------------------------


def test_as_of_answers_from_the_offline_store_at_that_time(project, users):
    store = make_feature_store(project=project, actor=users["owner"], ttl=timedelta(hours=6))
    services.feature_view_materialize(view=store.view, as_of=store.end)    # the store holds hour 23's values
    past = START + timedelta(hours=5)
    res = services.online_features_get(feature_set=store.feature_set, entity_keys=["c1"], as_of=past)[0]
    assert res["values"] == {"amount": 104.0, "n_tx": 4}                   # value of hour 4 (lag 1h), not 23
    assert res["event_times"]["amount"] == START + timedelta(hours=4) and res["status"]["n_tx"] == "ok"


def test_online_api_as_of_with_an_offset_answers_as_of_that_instant(project, users, api_client):
    make_feature_store(project=project, actor=users["owner"], ttl=timedelta(hours=6))
    c = api_client(users["data_scientist"])
    r = c.post(f"{BASE}/feature-sets/fraud-inputs/online",
               {"entity_keys": ["c1", "nobody"], "as_of": "2024-01-01T07:00:00+02:00"}, content_type="application/json")
    assert r.status_code == 200, r.content
    first, unknown = r.json()["results"]
    assert first["values"] == {"amount": 104.0, "n_tx": 4} and first["status"] == {"amount": "ok", "n_tx": "ok"}
    assert unknown["status"] == {"amount": "missing", "n_tx": "missing"}


def test_ttl_is_inclusive_online_and_offline(project, users):
    store = make_feature_store(project=project, actor=users["owner"], ttl=timedelta(hours=6), n_times=1)
    services.feature_view_materialize(view=store.view, as_of=START + timedelta(hours=6))
    at = services.online_features_get(feature_set=store.feature_set, entity_keys=["c1"], now=START + timedelta(hours=6))
    assert at[0]["status"]["amount"] == "ok"                                # exactly TTL old: still usable
    after = services.online_features_get(feature_set=store.feature_set, entity_keys=["c1"],
                                         now=START + timedelta(hours=6, microseconds=1))
    assert after[0]["status"]["amount"] == "expired"
    for t, status in ((START + timedelta(hours=6), "ok"), (START + timedelta(hours=6, microseconds=1), "expired")):
        res = services.online_features_get(feature_set=store.feature_set, entity_keys=["c1"], as_of=t)
        assert res[0]["status"]["amount"] == status


# --- the property: typed keys never merge ----------------------------------------------------------------

_N = [0]
string_keys = st.sampled_from(["007", "7", "07", "0", "00", "1e3", "1000", "-1", "+1", "1.0", "1", " 1", "NA", "abc"])
int_keys = st.integers(-5, 5)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_typed_keys_agree_across_sources_labels_online_and_training_sets(project, users, data):
    """Generated keys (ints, strings with leading zeros, numeric-looking strings): the source, the label
    file, the online store and the training set agree on every key, and two distinct keys never merge."""
    from apps.features.models import Entity

    owner = users["owner"]
    kind = data.draw(st.sampled_from(["string", "int"]))
    keys = data.draw(st.lists(string_keys if kind == "string" else int_keys, min_size=1, max_size=6, unique=True))
    if kind == "string":
        keys = [k for k in keys if k.strip() == k] or ["007"]   # CSV cells are not trimmed; keep keys exact
    fmt = data.draw(st.sampled_from(["csv", "parquet"]))
    _N[0] += 1
    n = _N[0]
    entity = Entity.objects.filter(project=project, name=f"e-{kind}").first() or services.entity_create(
        project=project, actor=owner, name=f"e-{kind}", join_key=f"k_{kind}", value_type=kind)
    key_col = entity.join_key
    values = [float(i) for i in range(len(keys))]                 # each key its own value
    frame = pl.DataFrame({key_col: keys, "ts": [START] * len(keys), "x": values},
                         schema={key_col: pl.String if kind == "string" else pl.Int64, "ts": pl.Datetime("us", "UTC"),
                                 "x": pl.Float64})
    if fmt == "csv":
        body = csv_bytes(frame)
    else:
        buf = io.BytesIO()
        frame.write_parquet(buf)
        body = buf.getvalue()
    src = services.data_source_upload(project=project, actor=owner, name=f"src{n}", upload=body,
                                      filename=f"s.{fmt}", column_types={key_col: kind}).source
    assert src.latest_version.row_count == len(keys)
    view = services.feature_view_create(project=project, actor=owner, name=f"v{n}", entity=entity, source=src,
                                        timestamp_column="ts", features=["x"], online=True)
    fs = services.feature_set_create(project=project, actor=owner, name=f"fs{n}", references=[f"v{n}:x"])
    t = START + timedelta(hours=1)
    labels = pl.DataFrame({key_col: keys, "when": [t] * len(keys), "y": list(range(len(keys)))},
                          schema={key_col: frame.schema[key_col], "when": pl.Datetime("us", "UTC"), "y": pl.Int64})
    label_body = csv_bytes(labels) if fmt == "csv" else parquet_from(labels)
    ts = services.training_set_request(project=project, actor=owner, name=f"ts{n}", feature_set=fs,
                                       labels_upload=label_body, labels_filename=f"l.{fmt}", timestamp_column="when")
    assert ts.label_row_count == len(keys)                        # no two keys collapsed into a duplicate
    built = services.training_set_build_frame(feature_set=fs, labels=labels, timestamp_column="when")
    assert built.get_column("x").to_list() == values              # each key its own value, none merged
    services.feature_view_materialize(view=view, as_of=t)
    online = services.online_features_get(feature_set=fs, entity_keys=keys, now=t)
    assert [r["values"]["x"] for r in online] == values
    assert [r["values"]["x"] for r in services.online_features_get(feature_set=fs, entity_keys=keys, as_of=t)] == values
    TrainingSet.objects.filter(pk=ts.pk).delete()


def parquet_from(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


# --- views that predate declared key types -----------------------------------------------------------------


def test_a_view_whose_key_column_type_differs_from_its_entity_is_never_joined(int_store, users, api_client,
                                                                              logged_in_client):
    """A view created before key types were enforced may read an int column for a string entity ("007"
    stored as 7): materialization, lookups (online and as_of), training sets and the schedule refuse it,
    naming the view, the column and the fix; the view page says so."""
    from apps.common.errors import Conflict
    from apps.features.models import Entity, FeatureView
    from apps.features.services.sets import _PLANS

    view = int_store["view"]
    services.feature_view_materialize(view=view, as_of=START + timedelta(hours=5))   # rows from before
    Entity.objects.filter(pk=int_store["entity"].pk).update(value_type="string")    # as such a view was made
    _PLANS.clear()
    FeatureView.objects.filter(pk=view.pk).update(materialize_every=timedelta(minutes=1))
    view = FeatureView.objects.select_related("entity", "source").get(pk=view.pk)
    message = ("View acct v1 cannot be joined: its key column 'account_id' holds int values in acct-src v1, but "
               "entity 'account' has string keys")
    c = api_client(users["data_scientist"])
    for body in ({"entity_keys": ["1"]}, {"entity_keys": ["1"], "as_of": "2024-01-01T05:00:00Z"}):
        r = c.post(f"{BASE}/feature-sets/acct-set/online", body, content_type="application/json")
        assert r.status_code == 409 and r.json()["detail"].startswith(message), r.content
        assert "declaring column_types account_id:string" in r.json()["detail"]
    r = c.post(f"{BASE}/feature-views/acct/materialize")
    assert r.status_code == 409 and r.json()["detail"].startswith(message)
    with pytest.raises(Conflict, match="cannot be joined"):
        services.feature_view_materialize(view=view)
    assert services.feature_view_materialize_due(now=START + timedelta(days=1000)) == []
    labels = SimpleUploadedFile("l.csv", b"account_id,event_timestamp,y\n1,2024-01-01T05:00:00Z,1\n")
    r = c.post(f"{BASE}/training-sets", {"name": "t", "feature_set": "acct-set", "labels": labels})
    assert r.status_code == 409 and r.json()["detail"].startswith(message)
    with pytest.raises(Conflict, match="cannot be joined"):
        services.training_set_build_frame(feature_set=int_store["feature_set"], labels=pl.DataFrame(
            {"account_id": ["1"], "event_timestamp": [START]}), timestamp_column="event_timestamp")
    page = logged_in_client(users["owner"]).get("/projects/fraud/features/views/acct/")
    from django.utils.html import escape

    assert page.status_code == 200 and escape(message) in page.content.decode()


def test_the_admins_edits_keep_the_stored_stale_flag_equal_to_the_rule(project, users, client, django_user_model):
    """The lookup reads ``FeatureView.online_stale``; edits made in the admin change the rule's inputs too (a
    version deleted there makes an older one the latest; a view saved there was edited after its
    materialization), so the admin refreshes the flag."""
    from django.forms.models import model_to_dict

    from apps.features.models import FeatureView

    owner = users["owner"]
    store = make_feature_store(project=project, actor=owner)
    newer = feature_rows(5, 48)
    services.data_source_upload(project=project, actor=owner, name="transactions",
                                upload=SimpleUploadedFile("tx.csv", csv_bytes(newer), content_type="text/csv"))
    services.feature_view_materialize(view=store.view, as_of=store.end)

    def stale():
        return FeatureView.objects.values_list("online_stale", flat=True).get(pk=store.view.pk)

    assert stale() is False
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    latest = DataSourceVersion.objects.filter(source=store.source).order_by("-version").first()
    assert latest.version == 2
    r = client.post(f"/admin/features/datasourceversion/{latest.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302 and not DataSourceVersion.objects.filter(pk=latest.pk).exists()
    assert stale() is True                      # v1 is the latest again: not what was materialized
    services.feature_view_materialize(view=store.view, as_of=store.end)
    assert stale() is False
    view = FeatureView.objects.get(pk=store.view.pk)
    data = {k: v for k, v in model_to_dict(view).items() if v is not None}
    data.update(availability_lag="05:00:00", tags="[]")
    r = client.post(f"/admin/features/featureview/{view.pk}/change/", data)
    assert r.status_code == 302, r.content[:2000]
    assert stale() is True                      # edited after its materialization

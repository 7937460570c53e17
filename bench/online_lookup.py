"""Benchmark: online feature lookup p50 through the service function and through the HTTP API.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/slipway_bench .venv/bin/python bench/online_lookup.py

Creates a throwaway database (Django's test-database utilities: ``<name>_bench_online``, dropped at the end),
a project with one online view of 10 float features for 1,000 entities, materializes it into the online
store (PostgreSQL table; Redis if SLIPWAY_FEATURES_REDIS_URL is set), then measures:

- the store's read (``read_served``: the values and the stale views in one round trip) for 1 entity,
- ``online_features_get`` for 1 entity × 10 features and for 100 entities × 10 features,
- ``POST /api/v1/projects/<p>/feature-sets/<fs>/online`` for 1 entity through Django's test Client
  (in-process: the full middleware stack, token authentication, ninja parsing and JSON rendering; no
  network socket).
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
    sys.exit("Set DATABASE_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/slipway_bench")

import django  # noqa: E402

django.setup()

from datetime import UTC, datetime, timedelta  # noqa: E402

import polars as pl  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402


def p50(fn, n: int) -> float:
    for _ in range(min(200, n)):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main():
    import io

    from django.contrib.auth import get_user_model
    from django.test import Client

    from apps.features import services
    from apps.projects.services import api_token_create, project_create

    old_name = connection.settings_dict["NAME"]
    # Its own throwaway database, so it never collides with a test run's test_<name> database.
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{old_name}_bench_online"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False, serialize=False)
    settings.DEBUG = False  # no query logging (as in production)
    settings.ALLOWED_HOSTS = ["testserver"]
    try:
        user = get_user_model().objects.create_user("bench", password="x")
        project = project_create(actor=user, name="Bench", slug="bench")
        entity = services.entity_create(project=project, actor=user, name="customer", join_key="customer_id")
        n_ent, n_t = 1000, 5
        t0 = datetime(2024, 1, 1, tzinfo=UTC)
        frame = pl.DataFrame({
            "customer_id": [f"c{e}" for e in range(n_ent) for _ in range(n_t)],
            "ts": [t0 + timedelta(hours=t) for _ in range(n_ent) for t in range(n_t)],
            **{f"f{j}": [float(e * 10 + t + j) for e in range(n_ent) for t in range(n_t)] for j in range(10)},
        })
        buf = io.BytesIO()
        frame.write_parquet(buf)
        src = services.data_source_upload(project=project, actor=user, name="src", upload=buf.getvalue()).source
        view = services.feature_view_create(project=project, actor=user, name="stats", entity=entity, source=src,
                                            timestamp_column="ts", features=[f"f{j}" for j in range(10)],
                                            availability_lag="0", online=True)
        fs = services.feature_set_create(project=project, actor=user, name="inputs",
                                         references=[f"stats:f{j}" for j in range(10)])
        services.feature_view_materialize(view=view)
        one = services.online_features_get(feature_set=fs, entity_keys=["c7"])
        assert one[0]["values"]["f0"] == 74.0, one
        keys100 = [f"c{i * 7}" for i in range(100)]
        assert len(services.online_features_get(feature_set=fs, entity_keys=keys100)) == 100

        from apps.features.online import online_store

        store_read = online_store().read_served
        sql1 = p50(lambda: store_read([view.pk], ["c7"]), 5000)
        s1 = p50(lambda: services.online_features_get(feature_set=fs, entity_keys=["c7"]), 5000)
        s100 = p50(lambda: services.online_features_get(feature_set=fs, entity_keys=keys100), 1000)
        token = api_token_create(user=user, name="bench")[1]
        client = Client(headers={"Authorization": f"Bearer {token}"})
        url = "/api/v1/projects/bench/feature-sets/inputs/online"
        body = '{"entity_keys": ["c7"]}'
        r = client.post(url, body, content_type="application/json")
        assert r.status_code == 200 and r.json()["results"][0]["values"]["f0"] == 74.0, r.content
        h1 = p50(lambda: client.post(url, body, content_type="application/json"), 2000)
        store = "redis" if settings.FEATURES_ONLINE_REDIS_URL else "PostgreSQL table"
        print(f"online lookup ({store}; 10 features; p50 over many calls)")
        print(f"  store read, 1 entity  : {sql1:6.3f} ms   (read_served: values + stale views, one round trip)")
        print(f"  service, 1 entity     : {s1:6.3f} ms   (goal ≤ 0.5 ms)")
        print(f"  service, 100 entities : {s100:6.3f} ms   (goal ≤ 2 ms)")
        print(f"  HTTP API, 1 entity    : {h1:6.3f} ms   (goal ≤ 3 ms; Django test Client, in-process)")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()

"""An existing installation migrates forward across the house restructuring with no data lost.

The code of the revision before the move (``OLD_REVISION``: shadow runs and promotion requests inside
deployments, training jobs inside registry, retraining policies inside monitoring) is taken from git,
migrates a fresh database (SQLite, or PostgreSQL when the suite runs on it) and loads the demo through
its own services. Then today's code runs ``migrate`` on the same database, and every moved row must
still be there, reachable through the models at their new places.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from tests.deployments.test_load import _db_url

ROOT = Path(__file__).resolve().parents[2]
OLD_REVISION = "cae4b8f"  # last commit before apps/releases and apps/training existed
MOVED_TABLES = ["deployments_shadowrun", "deployments_shadowprediction", "deployments_promotionrequest",
                "deployments_promotionreview", "registry_trainingjob", "monitoring_retrainingpolicy",
                "monitoring_policyfiring"]

COUNT = """
import json, django
django.setup()
from django.db import connection
with connection.cursor() as cur:
    counts = {}
    for table in %r:
        cur.execute(f'SELECT COUNT(*) FROM "{table}"')
        counts[table] = cur.fetchone()[0]
print(json.dumps(counts))
"""

READ_NEW = """
import json, django
django.setup()
from django.contrib.contenttypes.models import ContentType
from apps.releases.models import PromotionRequest, PromotionReview, ShadowPrediction, ShadowRun
from apps.training.models import PolicyFiring, RetrainingPolicy, TrainingJob
models = {"deployments_shadowrun": ShadowRun, "deployments_shadowprediction": ShadowPrediction,
          "deployments_promotionrequest": PromotionRequest, "deployments_promotionreview": PromotionReview,
          "registry_trainingjob": TrainingJob, "monitoring_retrainingpolicy": RetrainingPolicy,
          "monitoring_policyfiring": PolicyFiring}
out = {t: m.objects.count() for t, m in models.items()}
out["_related"] = [str(r.deployment.slug) for r in ShadowRun.objects.select_related("deployment")[:1]]
out["_content_types"] = sorted(ContentType.objects.filter(model__in=[m._meta.model_name for m in models.values()])
                               .values_list("app_label", flat=True).distinct())
print(json.dumps(out))
"""


def _old_tree(dest: Path) -> Path:
    have = subprocess.run(["git", "cat-file", "-e", f"{OLD_REVISION}^{{commit}}"], cwd=ROOT, capture_output=True)
    if have.returncode != 0:
        shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip() == "true"
        if shallow:  # a depth-limited clone cannot hold the old revision; a full clone always runs this test
            subprocess.run(["git", "fetch", "--quiet", "--unshallow"], cwd=ROOT, capture_output=True, timeout=120)
            have = subprocess.run(["git", "cat-file", "-e", f"{OLD_REVISION}^{{commit}}"], cwd=ROOT,
                                  capture_output=True)
            if have.returncode != 0:
                pytest.skip(f"shallow clone without revision {OLD_REVISION}: clone with history to run this check")
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", OLD_REVISION], cwd=ROOT, check=True,
                                 capture_output=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as exc:  # never a silent skip: the check must run
        pytest.fail(f"git could not export revision {OLD_REVISION} (a clone with history is needed): {exc}")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _run(cwd: Path, env: dict, *args: str, timeout: float = 600) -> str:
    out = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args)} in {cwd} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.mark.django_db(transaction=True)
def test_a_database_with_the_demo_at_the_old_revision_migrates_forward_without_losing_rows(tmp_path):
    url, drop = _db_url(tmp_path)
    old = _old_tree(tmp_path / "old")
    env = {**os.environ, "DATABASE_URL": url, "SLIPWAY_DATA_DIR": str(tmp_path / "data"),
           "DJANGO_SETTINGS_MODULE": "portal.settings", "PYTHONPATH": str(old), "LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        _run(old, env, "manage.py", "migrate", "--noinput")
        _run(old, env, "manage.py", "seed_demo", timeout=900)
        before = json.loads(_run(old, env, "-c", COUNT % MOVED_TABLES).strip().splitlines()[-1])
        assert before["deployments_shadowrun"] > 0 and before["deployments_promotionrequest"] > 0, before
        assert before["registry_trainingjob"] > 0 and before["monitoring_retrainingpolicy"] > 0, before

        new_env = {**env, "PYTHONPATH": str(ROOT)}
        _run(ROOT, new_env, "manage.py", "migrate", "--noinput")
        _run(ROOT, new_env, "manage.py", "makemigrations", "--check", "--dry-run")
        after = json.loads(_run(ROOT, new_env, "-c", READ_NEW).strip().splitlines()[-1])
    finally:
        drop()
    for table in MOVED_TABLES:
        assert after[table] == before[table], f"{table}: {before[table]} rows before, {after[table]} after"
    assert after["_related"], "a moved shadow run lost its deployment"
    assert after["_content_types"] == ["releases", "training"]

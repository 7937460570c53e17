"""Effective configuration: Celery settings that are easy to misspell, and production hardening."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_effective_celery_settings():
    from portal.celery import app

    app.loader.import_default_modules()  # what a worker does at start: import the `include` modules
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    assert conf.task_routes["workers.training.*"] == {"queue": "training"}
    assert set(conf.include) >= {"workers.projects"}
    assert "workers.projects.audit_export_run" in app.tasks


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {**env, "DEBUG": "false", "SECRET_KEY": "x" * 64 + "production-secret-for-the-check",
           "ALLOWED_HOSTS": "slipway.example.com", "SLIPWAY_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_production_refuses_to_start_without_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update({"DEBUG": "false", "SLIPWAY_DATA_DIR": str(tmp_path)})
    out = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "SECRET_KEY" in out.stderr


def test_embedded_broker_puts_messages_atomically(tmp_path):
    """A consumer listing the queue folder never sees a message file before it is complete."""
    from kombu import Connection

    from portal.fsbroker import Transport

    folder = tmp_path / "q"
    folder.mkdir()
    opts = {"data_folder_in": str(folder), "data_folder_out": str(folder), "processed_folder": str(tmp_path),
            "store_processed": False}
    with Connection("filesystem://", transport=Transport, transport_options=opts) as conn:
        channel = conn.default_channel
        channel._put("default", {"body": "x" * 10_000})
        names = [p.name for p in folder.iterdir()]
        assert len(names) == 1 and names[0].endswith(".default.msg"), names  # no temporary file left behind
        assert channel._get("default") == {"body": "x" * 10_000}

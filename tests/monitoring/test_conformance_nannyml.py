"""Conformance with NannyML 0.13.1 on its own bundled data (``data/nannyml_synthetic_binary``: the
synthetic binary classification set and what NannyML computed on it; see SOURCE.md there).

The production pipeline, with two serving processes on two hosts: every request (50 rows, request
time = the data's timestamp) is written to one of two spools, whose drainers run interleaved at
different rates — so the log's ids are *not* in request order. Outcomes are posted right after the
predictions, while most rows are still in the spools. Then the scheduled tick (count windows of
5,000) must give:

- windows equal to NannyML's chunks (the same rows), none partial;
- every outcome matched (none "unknown"), each label counted once, in its row's window;
- realized ROC AUC / accuracy / precision / recall / F1 equal to scikit-learn's on the window's rows;
- CBPE's mean absolute error ≤ NannyML's, realized inside the band in ≥ 9 of 10 windows;
- drift on the four shifted features in windows 5–9, on nothing else (NannyML: the same 20 plus 3
  false alarms), never on ``workday``.
"""

import json
import uuid
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from django.conf import settings
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from apps.common.storage import artifact_store
from apps.deployments import logpipe, spool
from apps.deployments.models import PredictionLog
from apps.monitoring import services
from apps.monitoring.models import MonitoringWindow, Outcome, PendingOutcome
from apps.monitoring.services.common import window_rows_q

pytestmark = pytest.mark.django_db
DATA = Path(__file__).parent / "data" / "nannyml_synthetic_binary"
NUMERIC = ["distance_from_office", "gas_price_per_litre", "public_transportation_cost", "tenure"]
CONTRACT = ([{"name": c, "type": "float"} for c in NUMERIC]
            + [{"name": "salary_range", "type": "str"}, {"name": "wfh_prev_workday", "type": "bool"},
               {"name": "workday", "type": "str"}])
SHIFTED = {"distance_from_office", "public_transportation_cost", "salary_range", "wfh_prev_workday"}
CHUNK = 5000
BATCH = 50


def _deployment(project, owner):
    """A binary classifier version whose reference is NannyML's reference period, registered the way
    the registry does it (profile + reference rows); the model's outputs are the data's own."""
    from apps.deployments.models import Deployment, DeploymentStatus
    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.registry.profile import build_reference_profile, reference_rows

    ref = pd.read_parquet(DATA / "reference.parquet")
    proba = ref["y_pred_proba"].to_numpy()
    kwargs = {"predictions": ref["y_pred"].to_numpy(), "probabilities": np.column_stack([1 - proba, proba]),
              "labels": ref["work_home_actual"].tolist()}
    profile = build_reference_profile(ref, CONTRACT, **kwargs)
    data, info = reference_rows(ref, CONTRACT, max_rows=settings.MONITORING_REFERENCE_MAX_ROWS, **kwargs)
    profile["rows"] = {**info, "key": artifact_store().put_bytes(data, suffix=".parquet").key, "source": "holdout"}
    model = RegisteredModel.objects.create(project=project, name="wfh", task="binary_classification",
                                           input_contract=CONTRACT, created_by=owner)
    version = ModelVersion.objects.create(model=model, version=1, status="ready", artifact_key="test",
                                          artifact_sha256="0" * 64, artifact_format="skops", classes=[0, 1],
                                          reference_profile=profile, created_by=owner)
    # The deployment row is made directly and the predictions reach the log through the real spool and
    # interleaved drainers below (test_conformance_api.py sends them through gunicorn's predict API).
    return Deployment.objects.create(project=project, slug="wfh", name="wfh", registered_model=model,
                                     production_version=version, owner=owner, status=DeploymentStatus.LIVE,
                                     created_by=owner)


def _serve(deployment, analysis: pd.DataFrame, folders) -> list[str]:
    """Answer every 50-row request in request order, alternating between two serving processes (each
    with its own spool); returns the request ids in request order."""
    writers = [spool.SpoolWriter(f) for f in folders]
    ts = pd.to_datetime(analysis["timestamp"]).dt.tz_localize("UTC").astype("int64").to_numpy() / 1e9
    assert (np.diff(ts[::BATCH]) > 0).all()  # request times strictly increase from request to request
    records = analysis[[c["name"] for c in CONTRACT]].to_dict("records")
    ids = [str(uuid.uuid4()) for _ in range(len(analysis))]
    for b, start in enumerate(range(0, len(analysis), BATCH)):
        rows = [[ids[i], {k: (bool(v) if isinstance(v, np.bool_) else v) for k, v in records[i].items()},
                 int(analysis["y_pred"].iat[i]),
                 {"0": 1 - float(analysis["y_pred_proba"].iat[i]), "1": float(analysis["y_pred_proba"].iat[i])},
                 None] for i in range(start, min(start + BATCH, len(analysis)))]
        writers[b % 2].append(orjson.dumps({"k": "p", "t": float(ts[start]), "d": deployment.pk,
                                            "v": deployment.production_version_id, "b": str(uuid.uuid4()),
                                            "l": 1.0, "r": rows}) + b"\n")
    for w in writers:
        w.close()
    return ids


def _drain_interleaved(folders, rounds: int | None = None) -> None:
    """The two hosts' drainers at different rates, interleaved (log ids then mix the requests)."""
    done = 0
    while rounds is None or done < rounds:
        moved = spool.drain_once(folders[1], logpipe.sink, batch_lines=7, max_batches=3)
        moved += spool.drain_once(folders[0], logpipe.sink, batch_lines=13, max_batches=2)
        done += 1
        if moved == 0:
            break


def _post(client, slug, items):
    return client.post(f"/api/v1/deployments/{slug}/outcomes", data=json.dumps({"outcomes": items}),
                       content_type="application/json")


def test_conformance_with_nannyml_synthetic_binary(project, users, api_client, tmp_path):
    analysis = pd.read_parquet(DATA / "analysis.parquet")
    nannyml = json.loads((DATA / "nannyml_cbpe.json").read_text())["results"]
    deployment = _deployment(project, users["owner"])
    services.monitor_settings_update(deployment=deployment, actor=users["owner"], window_kind="count",
                                     window_count=CHUNK)
    folders = [tmp_path / "host-a", tmp_path / "host-b"]
    ids = _serve(deployment, analysis, folders)
    _drain_interleaved(folders, rounds=5)  # the drainers lag: most predictions are still spooled

    # outcomes posted immediately: what is not logged yet is held pending, never "unknown"
    labels = analysis["work_home_actual"].tolist()
    client = api_client(users["owner"])
    for start in range(0, len(ids), 10_000):
        r = _post(client, deployment.slug, [{"request_id": rid, "label": int(y)} for rid, y in
                                            zip(ids[start:start + 10_000], labels[start:start + 10_000],
                                                strict=True)])
        assert r.status_code in (200, 202), r.content
        assert r.json()["unknown_request_ids"] == []
    assert PendingOutcome.objects.count() > 30_000

    _drain_interleaved(folders)
    assert PredictionLog.objects.count() == 50_000
    by_log_id = list(PredictionLog.objects.order_by("id").values_list("request_id", flat=True)[:CHUNK])
    assert {str(r) for r in by_log_id} != set(ids[:CHUNK])  # the log's id order is not request order

    last = pd.Timestamp(analysis["timestamp"].iat[-1], tz="UTC").to_pydatetime()
    services.monitoring_tick(now=last + pd.Timedelta(days=1))
    assert PendingOutcome.objects.count() == 0 and Outcome.objects.count() == 50_000

    windows = list(MonitoringWindow.objects.filter(deployment=deployment).order_by("start", "first_request_id"))
    assert [(w.n_rows, w.partial) for w in windows] == [(CHUNK, False)] * 10
    errors = {m: [] for m in ("roc_auc", "accuracy", "f1")}
    inside = dict.fromkeys(errors, 0)
    drifted = []
    for i, w in enumerate(windows):
        chunk = analysis.iloc[i * CHUNK:(i + 1) * CHUNK]
        rows = {str(r) for r in PredictionLog.objects.filter(window_rows_q(w), deployment=deployment)
                .values_list("request_id", flat=True)}
        assert rows == set(ids[i * CHUNK:(i + 1) * CHUNK]), f"window {i} is not NannyML's chunk {i}"
        assert w.n_labelled == CHUNK  # each label once, in its row's window
        y, p, s = chunk["work_home_actual"], chunk["y_pred"], chunk["y_pred_proba"]
        expected = {"roc_auc": roc_auc_score(y, s), "accuracy": accuracy_score(y, p), "f1": f1_score(y, p),
                    "precision": precision_score(y, p), "recall": recall_score(y, p)}
        assert {m: w.realized[m]["value"] for m in expected} == expected
        for m in errors:
            est = w.estimated[m]
            errors[m].append(abs(est["value"] - expected[m]))
            inside[m] += est["low"] <= expected[m] <= est["high"]
            theirs = next(r for r in nannyml if r["metric"] == m and r["period"] == "analysis"
                          and r["chunk_index"] == i)
            assert est["alert"] == theirs["alert"], (m, i)  # the same performance alerts as NannyML
            assert w.realized[m]["alert"] == theirs["realized_alert_performance_calculator"], (m, i)
        drifted.append({f.feature for f in w.features.filter(drifted=True)})
    for m, errs in errors.items():
        theirs = np.mean([abs(r["estimated"] - r["realized"]) for r in nannyml
                          if r["metric"] == m and r["period"] == "analysis"])
        assert np.mean(errs) <= theirs + 1e-9, (m, np.mean(errs), theirs)
        assert inside[m] >= 9, (m, inside[m])
    assert drifted == [set()] * 5 + [SHIFTED] * 5

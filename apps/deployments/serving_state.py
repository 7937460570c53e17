"""Everything a serving process needs to answer every deployment, read in one go — and kept on disk.

``snapshot_from_db()`` reads, in five small queries, the serving generation, every deployment (status,
production version, input mode, contract), every canary, the hash of every active API key and, for each
version that may serve, what the registry needs to load its model (artifact keys, format, classes).
``snapshot_write`` stores it as one JSON file (``SERVING_STATE_SNAPSHOT``, written atomically, mode 0600:
it holds key *hashes*, never a key), ``snapshot_read`` reads it back. Every process that reads a newer
generation from the database rewrites the file (the workers on a generation change, and the drainer
process gunicorn starts, once per round even without traffic), so a worker that starts while the
database is down still knows every deployment, key and model — as of the last generation any process
on this host saw.

The snapshot always holds ALL deployments; a pool restricted by ``SERVING_DEPLOYMENTS`` filters at use,
so pools with different allow-lists can share one file.

Entity-key deployments also need their feature set's lookup plan (``feature_sets``: plain JSON, no
database read per request) and the online values themselves. A second file, ``SERVING_ONLINE_SNAPSHOT``,
holds every online value of each *small* view (at most ``SERVING_ONLINE_PRELOAD_ROWS`` entities) that a
live entity-key deployment reads, with the view's last materialization time; the drainer rewrites it when
a materialization changed that time. Workers preload those views whole (from the database, else this
file); see ``online_cache``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

SNAPSHOT_FORMAT = 1


def snapshot_from_db() -> dict:
    """The whole serving state as plain JSON-able data (raises ``DatabaseError`` when unreachable)."""
    from apps.registry.models import ModelVersion

    from .models import Deployment, DeploymentApiKey, ServingGeneration

    # The generation first: a change committed while the rest is read makes the next check reload again.
    generation = ServingGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0
    deployments = list(Deployment.objects.values(
        "id", "slug", "status", "status_message", "input_mode", "max_batch", "production_version_id",
        "production_version__version", "registered_model__name", "registered_model__input_contract",
        "registered_model__feature_set_id", "registered_model__task"))
    canaries = _canaries()
    keys = dict(DeploymentApiKey.objects.filter(revoked_at__isnull=True).values_list("key_hash", "deployment_id"))
    version_ids = {d["production_version_id"] for d in deployments} | {c["candidate_id"] for c in canaries.values()}
    feature_sets = _feature_set_specs({d["registered_model__feature_set_id"] for d in deployments
                                       if d["input_mode"] == "entity" and d["registered_model__feature_set_id"]})
    versions = {}
    for v in ModelVersion.objects.filter(pk__in=version_ids).values(
            "id", "version", "status", "serving_format", "onnx_verified", "onnx_artifact_key", "safe_artifact_key",
            "classes", "model_id", "model__name", "model__task", "model__input_contract"):
        versions[str(v["id"])] = {
            "id": v["id"], "version": v["version"], "status": v["status"], "serving_format": v["serving_format"],
            "onnx_verified": v["onnx_verified"], "onnx_artifact_key": v["onnx_artifact_key"],
            "safe_artifact_key": v["safe_artifact_key"], "classes": v["classes"], "model_id": v["model_id"],
            "model_name": v["model__name"], "task": v["model__task"], "contract": v["model__input_contract"] or []}
    return {
        "format": SNAPSHOT_FORMAT, "generation": generation, "written_at": time.time(),
        "deployments": [{
            "id": d["id"], "slug": d["slug"], "live": d["status"] == "live", "status_message": d["status_message"],
            "input_mode": d["input_mode"], "max_batch": d["max_batch"], "version_id": d["production_version_id"],
            "version_label": f"v{d['production_version__version']}", "model_name": d["registered_model__name"],
            "contract": d["registered_model__input_contract"] or [],
            "feature_set_id": d["registered_model__feature_set_id"], "task": d["registered_model__task"],
            "canary": canaries.get(d["id"]),
        } for d in deployments],
        "keys": keys,
        "versions": versions,
        "feature_sets": feature_sets,
    }


def _feature_set_specs(ids: set[int]) -> dict:
    """feature set id (as text) → its online lookup plan spec (``lookup_plan_spec``). A set that a model
    uses cannot change its features (``feature_set_update``), so the spec stays right for the model."""
    if not ids:
        return {}
    from apps.features.models import FeatureSet
    from apps.features.services import lookup_plan_spec

    return {str(fs.pk): lookup_plan_spec(fs) for fs in FeatureSet.objects.filter(pk__in=ids)}


def online_view_ids(snap: dict, allow: list[str] | None = None) -> list[int]:
    """The online views that this pool's live entity-key deployments read."""
    specs = snap.get("feature_sets") or {}
    out: list[int] = []
    for d in snap["deployments"]:
        spec = specs.get(str(d.get("feature_set_id")))
        if d["live"] and d["input_mode"] == "entity" and spec and allowed(d["slug"], allow or []):
            out += [int(v) for v in spec["views"] if int(v) not in out]
    return out


def online_stamps_from_db(view_ids: list[int]) -> dict[int, tuple[str, int, bool]]:
    """view id → (last materialization time as text, rows in the online store, stale? — ``STALE_RULE``):
    two small queries."""
    from apps.features.models import FeatureView
    from apps.features.online import stale_view_ids

    stale = stale_view_ids(view_ids)
    rows = FeatureView.objects.filter(pk__in=view_ids).values_list("pk", "last_materialized_at", "online_row_count")
    return {pk: (at.isoformat() if at else "", n or 0, pk in stale) for pk, at, n in rows}


def online_rows_from_db(view_id: int) -> list[list]:
    """Every online value of one view: [entity key, values, event time in µs since the epoch]."""
    from datetime import UTC, datetime, timedelta

    from apps.features.models import OnlineFeatureValue

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [[k, vals, (ev - epoch) // timedelta(microseconds=1)] for k, vals, ev in
            OnlineFeatureValue.objects.filter(view_id=view_id).values_list("entity_key", "values", "event_time")
            .iterator(chunk_size=5000)]


def online_snapshot_refresh(path: str | os.PathLike, *, state_path: str | os.PathLike, known: dict | None,
                            max_rows: int) -> dict | None:
    """Rewrite the online-values file when the views it should hold, or their materialization, changed
    (the drainer calls this every round; a full read only then). Returns the stamps now on file."""
    snap = snapshot_read(state_path)
    if snap is None:
        return known
    ids = online_view_ids(snap)
    stamps = online_stamps_from_db(ids) if ids else {}
    wanted = {vid: st for vid, st in stamps.items() if st[0] and st[1] <= max_rows}
    current = {str(vid): [st[0], st[2]] for vid, st in wanted.items()}
    if current == known and Path(path).exists():
        return known
    views = {str(vid): {"stamp": st[0], "stale": st[2], "rows": online_rows_from_db(vid)} for vid, st in wanted.items()}
    _write_json(Path(path), {"format": SNAPSHOT_FORMAT, "written_at": time.time(), "views": views})
    return current


def online_snapshot_read(path: str | os.PathLike) -> dict:
    """view id → {"stamp", "stale", "rows"} from the online-values file ({} when there is none)."""
    data = snapshot_read(path)
    return {int(k): v for k, v in (data or {}).get("views", {}).items()}


def _canaries() -> dict:
    """deployment id → {candidate_id, label, percent, sticky_by}."""
    from .models import Canary

    out = {}
    for c in Canary.objects.filter(paused_at__isnull=True).values("deployment_id", "candidate_id", "candidate__version", "percent", "sticky_by"):
        out[c["deployment_id"]] = {"candidate_id": c["candidate_id"], "label": f"v{c['candidate__version']}",
                                   "percent": float(c["percent"]), "sticky_by": c["sticky_by"]}
    return out


def snapshot_write(path: str | os.PathLike, snapshot: dict) -> bool:
    """Atomically replace the file unless it already holds a newer generation. Returns True if written."""
    path = Path(path)
    current = snapshot_read(path)
    if current is not None and current.get("generation", -1) > snapshot["generation"]:
        return False
    _write_json(path, snapshot)
    return True


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(data, separators=(",", ":")).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def snapshot_read(path: str | os.PathLike) -> dict | None:
    """The stored snapshot, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (FileNotFoundError, ValueError, OSError):
        return None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        return None
    return data


def generation_from_db() -> int:
    from .models import ServingGeneration

    return ServingGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0


def snapshot_refresh(path: str | os.PathLike, *, known_generation: int | None) -> int:
    """Rewrite the file when the database's generation differs from ``known_generation`` (the drainer
    calls this every round). Returns the generation now on file."""
    generation = generation_from_db()
    if generation != known_generation or not Path(path).exists():
        snap = snapshot_from_db()
        snapshot_write(path, snap)
        return snap["generation"]
    return generation


def allowed(slug: str, patterns: list[str]) -> bool:
    """``SERVING_DEPLOYMENTS``: empty = every deployment; else shell-style patterns (``fraud-*``)."""
    if not patterns:
        return True
    from fnmatch import fnmatchcase

    return any(fnmatchcase(slug, p) for p in patterns)

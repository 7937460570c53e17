"""The prediction hot path: ``POST /api/v1/deployments/<slug>/predict``.

Transport-free core (``predict``) used by two thin adapters: a WSGI dispatcher that answers this one
URL before Django's middleware (``ServingDispatcher``, wired in ``portal/wsgi.py``), and a plain Django
view (``views.predict_view``, for the test client and runserver). Both give identical answers.

Per request, in the common case, nothing touches the database: the deployment's state, the API-key
hashes and the model (by version id) are cached in the process. Every ``SERVING_STATE_TTL`` seconds
(1 s) one tiny query reads the ``ServingGeneration`` counter; when it changed, entries are reloaded on
their next use — so a pause, a revoked key or a new production version reach every process within
~1 s, without a restart. When the database is unreachable the last known state keeps serving (and
the prediction log spools locally), so an outage of PostgreSQL does not stop predictions; entity-key
deployments answer from each process's copy of online values (``online_cache``: small views whole,
recently read entities otherwise) and refuse the rest with 503 + Retry-After.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import orjson
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from sklearn import config_context as sklearn_config

from apps.common.edge import text_problem
from apps.common.logging import HotPathLog
from apps.common.secrets import secret_hash

from . import contract as C
from . import logpipe, metrics, serving_state
from .hot_settings import hot
from .online_cache import ONLINE, NotCached

logger = logging.getLogger("slipway.serving")

KEY_PREFIX = "sdk_"
JSON_HEADERS = [("Content-Type", "application/json")]


key_hash = secret_hash


@dataclass
class DeploymentState:
    id: int
    slug: str
    live: bool
    status_message: str
    version_id: int
    version_label: str
    model_name: str
    input_mode: str
    max_batch: int
    contract: C.Contract | None
    contract_error: str
    feature_set_id: int | None
    task: str
    generation: int
    labels: dict = field(default_factory=dict)
    # canary (apps/deployments/models_promotion.Canary): a share of requests answered by the candidate
    canary_version_id: int | None = None
    canary_version_label: str = ""
    canary_percent: float = 0.0
    canary_sticky: str = "request"
    # entity-key deployments: the feature set's lookup plan, from the state snapshot (no read of the set)
    online_plan: dict | None = None


RETRY_AFTER_S = 5  # the Retry-After of a 503 while the database (or the online store) is unreachable


class ServingError(Exception):
    def __init__(self, status: int, detail: str, errors: list | None = None, *, reason: str = "",
                 retry_after: int | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.reason = reason or str(status)
        self.retry_after = retry_after


class _RowIds:
    """Per-process unique ids: 64 random bits + a counter, shaped as UUIDs (cheap: no syscall per id; a
    forked child draws new random bits before its first id)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._high: int | None = None
        self._n = 0
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._high = None

    def take(self, n: int) -> list[str]:
        with self._lock:
            if self._high is None:
                self._high = int.from_bytes(os.urandom(8), "big") << 64
                self._n = int.from_bytes(os.urandom(3), "big") << 32
            start = self._n
            self._n += n
            high = self._high
        out = []
        for i in range(n):  # str(uuid.UUID(int=...)), without building the UUID
            h = "%032x" % (high | ((start + i) & 0xFFFFFFFFFFFFFFFF))
            out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
        return out


class ServingCache:
    """This process's view of every deployment (``_state``, one immutable bundle swapped whole) and its
    model cache (least recently used first, bounded by ``SERVING_MODEL_CACHE_BYTES`` of measured size)."""

    def __init__(self):
        self._lock = threading.RLock()
        self._state: ServingState | None = None
        self._checked = 0.0
        self._models: OrderedDict[int, tuple[object, int]] = OrderedDict()  # version id → (predictor, bytes)
        self.model_bytes = 0

    def clear(self) -> None:
        with self._lock:
            self._state, self._checked = None, 0.0
        ONLINE.clear()  # the online values copy belongs to the state it was read under

    @property
    def _predictors(self) -> dict:
        """version id → predictor (read-only view, for tests and warm-up)."""
        return {vid: entry[0] for vid, entry in self._models.items()}

    def clear_models(self) -> None:
        with self._lock:
            self._models.clear()
            self.model_bytes = 0
            metrics.safely(metrics.set_model_cache, 0, 0)

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> ServingState:
        """The current state: re-checked against the database at most every ``SERVING_STATE_TTL``; while
        the database is unreachable, the last state this process knew, else the host's snapshot file."""
        st = self._state
        if st is not None and time.monotonic() - self._checked < hot().state_ttl:
            return st
        # One thread checks; with a state in hand the others keep serving it meanwhile (gthread workers).
        if not self._lock.acquire(blocking=st is None):
            return st
        try:
            st = self._state
            now = time.monotonic()
            if st is not None and now - self._checked < settings.SERVING_STATE_TTL:
                return st
            self._checked = now
            try:
                previous = st
                if st is None or st.source != "database" or serving_state.generation_from_db() != st.generation:
                    st = self._install(serving_state.snapshot_from_db(), source="database")
                    self._write_snapshot(st.raw)
                if st.online_views:
                    self._sync_online(st)
                if previous is not None and previous.outage_since is not None:
                    previous.outage_since = None
                    metrics.safely(metrics.set_outage, False)
                    logger.warning("Serving state: database reachable again")
                return st
            except DatabaseError:
                _reset_db()
                return self._fallback(st)
        finally:
            self._lock.release()

    def _fallback(self, st: ServingState | None) -> ServingState:
        if st is None:
            snap = serving_state.snapshot_read(settings.SERVING_STATE_SNAPSHOT)
            if snap is None:
                raise ServingError(503, "The serving state cannot be read right now (database unavailable and "
                                        "no local snapshot); retry shortly", reason="db_unavailable",
                                   retry_after=RETRY_AFTER_S)
            st = self._install(snap, source="snapshot")
            logger.warning("Serving from the local state snapshot (database unreachable)",
                           extra={"generation": st.generation, "snapshot_age_s": round(time.time() - st.written_at, 1)})
        if st.outage_since is None:
            st.outage_since = time.time()
            metrics.safely(metrics.set_outage, True)
            logger.warning("Serving state check failed (database unreachable); using the last known state",
                           extra={"generation": st.generation, "source": st.source})
        return st

    @staticmethod
    def _sync_online(st: ServingState) -> None:
        """Database reachable: note each online view's last materialization (a changed view's copy is
        dropped) and hold every small view whole, read again after each materialization (see online_cache)."""
        stamps = serving_state.online_stamps_from_db(st.online_views)
        ONLINE.note_stamps({vid: stamp for vid, (stamp, _, _) in stamps.items()})
        ONLINE.note_stale(list(stamps), {vid for vid, (_, _, stale) in stamps.items() if stale})
        for vid, (stamp, rows, stale) in stamps.items():
            if stamp and rows <= settings.SERVING_ONLINE_PRELOAD_ROWS and ONLINE.preloaded.get(vid) != stamp:
                ONLINE.preload(vid, stamp, serving_state.online_rows_from_db(vid), stale=stale)

    def _install(self, snap: dict, *, source: str) -> ServingState:
        st = ServingState.build(snap, source=source, allow=settings.SERVING_DEPLOYMENTS)
        self._state = st
        return st

    @staticmethod
    def _write_snapshot(snap: dict) -> None:
        try:
            serving_state.snapshot_write(settings.SERVING_STATE_SNAPSHOT, snap)
        except OSError:
            logger.exception("Could not write the serving state snapshot",
                             extra={"path": str(settings.SERVING_STATE_SNAPSHOT)})

    # -- deployments and keys ------------------------------------------------------------------
    def deployment(self, slug: str, st: ServingState | None = None) -> DeploymentState:
        """The deployment named ``slug`` in ``st`` (default: the current state)."""
        if st is None:
            st = self.state()
        dep = st.deployments.get(slug)
        if dep is None:
            problem = text_problem(slug)  # (a known slug was stored, so it has none)
            if problem:
                raise ServingError(422, f"deployment {problem}", [{"field": "deployment", "message": problem}],
                                   reason="invalid_input")
            if slug in st.elsewhere:
                raise ServingError(404, f"Deployment {slug!r} is not served by this pool (SERVING_DEPLOYMENTS)",
                                   reason="not_served_here")
            raise ServingError(404, f"No deployment named {slug!r}", reason="not_found")
        return dep

    @staticmethod
    def key_owner(plaintext: str, st: ServingState | None) -> int | None:
        """The deployment id a key belongs to in ``st`` (None: unknown or revoked). Checked before the
        deployment is resolved (401 whether or not the slug exists)."""
        h = key_hash(plaintext)
        owner = st.keys.get(h) if st is not None else None
        return owner if owner is not None else PROBE.keys.get(h)

    # -- models --------------------------------------------------------------------------------
    def predictor(self, state: DeploymentState, version_id: int | None = None):
        version_id = state.version_id if version_id is None else version_id
        entry = self._models.get(version_id)
        if entry is not None:
            try:
                self._models.move_to_end(version_id)
            except KeyError:  # evicted by another thread just now: it stays usable for this request
                pass
            return entry[0], version_id
        return self.load(version_id, reason="miss"), version_id

    def load(self, version_id: int, *, reason: str):
        if version_id == PROBE.version_id:
            return PROBE.predictor
        with self._lock:
            entry = self._models.get(version_id)
            if entry is not None:
                return entry[0]
            st = self._state
            spec = st.versions.get(version_id) if st is not None else None
            predictor, size = _load_predictor(version_id, spec)
            self._models[version_id] = (predictor, size)
            self.model_bytes += size
            evicted = 0
            budget = settings.SERVING_MODEL_CACHE_BYTES
            while self.model_bytes > budget and len(self._models) > 1:
                old_id, (_, old_size) = next(iter(self._models.items()))
                if old_id == version_id:
                    break
                del self._models[old_id]
                self.model_bytes -= old_size
                evicted += 1
                logger.info("Evicted a model version from the serving cache",
                            extra={"version_id": old_id, "bytes": old_size, "cache_bytes": self.model_bytes})
            metrics.safely(metrics.model_loaded, reason, evicted, self.model_bytes, len(self._models))
            return predictor


class ServingState:
    """One generation of the serving state, built from a snapshot (database or file)."""

    def __init__(self, *, generation: int, source: str, written_at: float, deployments: dict, keys: dict,
                 versions: dict, elsewhere: set, raw: dict):
        self.generation = generation
        self.source = source  # "database" | "snapshot"
        self.written_at = written_at
        self.deployments = deployments
        self.keys = keys
        self.versions = versions
        self.elsewhere = elsewhere  # slugs that exist but another pool serves
        self.raw = raw
        self.outage_since: float | None = None
        served = {d.slug for d in deployments.values()}
        self.online_views = serving_state.online_view_ids(
            {**raw, "deployments": [d for d in raw["deployments"] if d["slug"] in served]})

    @classmethod
    def build(cls, snap: dict, *, source: str, allow: list[str]) -> ServingState:
        gen = snap["generation"]
        deployments, elsewhere = {}, set()
        plans: dict[str, dict] = {}
        for fs_id, spec in (snap.get("feature_sets") or {}).items():
            from apps.features.services import lookup_plan_from_spec

            plans[fs_id] = lookup_plan_from_spec(spec)
        for d in snap["deployments"]:
            if not serving_state.allowed(d["slug"], allow):
                elsewhere.add(d["slug"])
                continue
            try:
                contract = C.Contract.from_spec(d["contract"])
                contract_error = "" if contract.width else "The model has no input contract"
            except (ValueError, KeyError, TypeError) as exc:
                contract, contract_error = None, str(exc)
            canary = d.get("canary") or {}
            if canary and (canary["candidate_id"] == d["version_id"] or canary["percent"] <= 0):
                canary = {}
            deployments[d["slug"]] = DeploymentState(
                id=d["id"], slug=d["slug"], live=d["live"], status_message=d["status_message"],
                version_id=d["version_id"], version_label=d["version_label"], model_name=d["model_name"],
                input_mode=d["input_mode"], max_batch=min(d["max_batch"], settings.SERVING_MAX_BATCH),
                contract=contract, contract_error=contract_error, feature_set_id=d["feature_set_id"], task=d["task"],
                generation=gen,
                canary_version_id=canary.get("candidate_id"), canary_version_label=canary.get("label", ""),
                canary_percent=canary.get("percent", 0.0), canary_sticky=canary.get("sticky_by", "request"),
                online_plan=plans.get(str(d["feature_set_id"])) if d["input_mode"] == "entity" else None)
        # Every deployment's keys, also those another pool serves: credentials are checked before the
        # deployment is resolved (401 whether or not it exists), so a valid key of a deployment served
        # elsewhere gets the pool's 404, not a 401.
        keys = dict(snap["keys"])
        versions = {int(k): v for k, v in snap["versions"].items()}
        return cls(generation=gen, source=source, written_at=snap.get("written_at", 0.0), deployments=deployments,
                   keys=keys, versions=versions, elsewhere=elsewhere, raw=snap)

    def serving_version_ids(self) -> list[int]:
        """Versions that live deployments answer with (production first, then canaries)."""
        out: list[int] = []
        for dep in self.deployments.values():
            if dep.live and dep.version_id not in out:
                out.append(dep.version_id)
        for dep in self.deployments.values():
            if dep.live and dep.canary_version_id is not None and dep.canary_version_id not in out:
                out.append(dep.canary_version_id)
        return out


def _reset_db() -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - the connection is already broken
        pass


def _canary_hit(state: DeploymentState, key: str) -> bool:
    """Sticky split: the same entity key (or request id) always lands on the same side."""
    return zlib.crc32(f"{state.id}:{key}".encode()) % 10_000 < state.canary_percent * 100


def _score(predictor, matrix):
    """(labels as JSON list, probabilities as lists or None, class names as strings or None)."""
    try:
        # scikit-learn re-checks every input for NaN/inf; the contract has already decided which values
        # may be missing, so that check is skipped here (~15% of a linear model's call). A model that
        # cannot take a missing value it was sent answers NaN: _non_finite_output gives the same 422.
        with sklearn_config(assume_finite=True):
            labels, probs = predictor.predict(matrix)
    except ValueError as exc:  # e.g. a missing value the model cannot take
        raise ServingError(422, f"The model could not score this input: {str(exc).splitlines()[0][:300]}",
                           reason="model_input") from exc
    if probs is not None:
        probs = np.asarray(probs)
        if not np.isfinite(probs).all():
            _non_finite_output(matrix, "probability")
    elif isinstance(labels, np.ndarray) and labels.dtype.kind == "f" and not np.isfinite(labels).all():
        _non_finite_output(matrix, "prediction")
    ckeys = [str(c.item() if hasattr(c, "item") else c) for c in (predictor.classes or [])] \
        if probs is not None else None
    return _to_json_list(labels), (probs.tolist() if probs is not None else None), ckeys


# Classifiers whose ``predict`` is exactly ``classes_[argmax(predict_proba)]``: for these one
# ``predict_proba`` call answers both (scikit-learn's per-call validation dominates single-row latency).
ARGMAX_CLASSIFIERS = frozenset({
    "LogisticRegression", "HistGradientBoostingClassifier", "GradientBoostingClassifier",
    "RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier", "ExtraTreeClassifier",
    "GaussianNB", "KNeighborsClassifier", "MLPClassifier",
})


class SklearnPredictor:
    """The registry's scikit-learn form, called with one ``predict_proba`` per request.

    Column names are checked by the contract validation before the model is called, so the
    estimator's recorded ``feature_names_in_`` is dropped from this in-memory copy (otherwise every
    call would need a pandas DataFrame or emit a warning); columns are always in contract order.
    """

    def __init__(self, estimator, classes, version_id: int, feature_names: list[str], *, keep_names: bool = False):
        self.estimator = estimator
        self.classes = classes
        self.version_id = version_id
        self.feature_names = feature_names
        self.format = "skops"
        self._classes_arr = np.asarray(getattr(estimator, "classes_", classes))
        if keep_names:  # typed DataFrame input (text features, or a ColumnTransformer picking columns by name)
            return
        steps = estimator.steps if hasattr(estimator, "steps") else [(None, estimator)]
        for _, step in steps:
            if hasattr(step, "feature_names_in_"):
                try:
                    del step.feature_names_in_
                except AttributeError:  # pragma: no cover - a read-only property
                    pass

    def predict(self, X):
        proba = self.estimator.predict_proba(X)
        return self._classes_arr[proba.argmax(axis=1)], proba


def _final_step(estimator):
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def _matrix_contract(version) -> bool:
    try:
        return C.Contract.from_spec(version.model.input_contract or []).numeric
    except ValueError:
        return False


def _selects_columns_by_name(estimator) -> bool:
    """A ColumnTransformer anywhere in the model picks columns by name: it needs a DataFrame."""
    steps = estimator.steps if hasattr(estimator, "steps") else [(None, estimator)]
    return any(type(step).__name__ == "ColumnTransformer" for _, step in steps)


def _version_from_spec(spec: dict):
    """An unsaved in-memory ModelVersion (with its RegisteredModel) built from a state snapshot: enough
    for the registry's loader, with no database read."""
    from apps.registry.models import ModelVersion, RegisteredModel

    model = RegisteredModel(id=spec["model_id"], name=spec["model_name"], task=spec["task"],
                            input_contract=spec["contract"])
    return ModelVersion(id=spec["id"], model=model, version=spec["version"], status=spec["status"],
                        serving_format=spec["serving_format"], onnx_verified=spec["onnx_verified"],
                        onnx_artifact_key=spec["onnx_artifact_key"], safe_artifact_key=spec["safe_artifact_key"],
                        classes=spec["classes"])


def _measured_bytes(predictor, version) -> int:
    """A model's size in memory: the scikit-learn estimator's pickled length (computed in memory, nothing
    is ever unpickled), or the ONNX file's size for onnxruntime (its weights are held once)."""
    estimator = getattr(predictor, "estimator", None)
    if estimator is not None:
        return len(pickle.dumps(estimator, protocol=5))
    from apps.common.storage import artifact_store

    key = version.onnx_artifact_key if predictor.format == "onnx" else version.safe_artifact_key
    try:
        return max(1, artifact_store().path(key).stat().st_size)
    except (OSError, ValueError):  # pragma: no cover - a store without local paths
        return len(artifact_store().read_bytes(key))


def _load_predictor(version_id: int, spec: dict | None = None):
    """(predictor, measured bytes). The registry decides the form (verified ONNX, else skops); for the
    scikit-learn form of a plain argmax classifier serving uses a leaner call path with identical answers.
    With ``spec`` (from the state snapshot) nothing is read from the database."""
    from apps.registry.loading import load_estimator, load_predictor
    from apps.registry.models import ModelVersion

    if spec is not None:
        version = _version_from_spec(spec)
    else:
        version = ModelVersion.objects.select_related("model").get(pk=version_id)
    started = time.perf_counter()
    predictor = load_predictor(version)
    if predictor.format == "skops" and predictor.classes is not None:
        estimator = load_estimator(version)
        final = _final_step(estimator)
        if type(final).__name__ in ARGMAX_CLASSIFIERS and list(getattr(final, "classes_", [])) == list(
                predictor.classes):
            by_name = not _matrix_contract(version) or _selects_columns_by_name(estimator)
            if by_name and not _matrix_contract(version):
                predictor = SklearnPredictor(estimator, predictor.classes, version_id, predictor.feature_names,
                                             keep_names=True)
            elif not by_name:
                predictor = SklearnPredictor(estimator, predictor.classes, version_id, predictor.feature_names)
    size = _measured_bytes(predictor, version)
    logger.info("Loaded model version for serving", extra={
        "version_id": version_id, "format": predictor.format, "bytes": size,
        "load_ms": round((time.perf_counter() - started) * 1000, 1)})
    return predictor, size


class _Probe:
    """The built-in probe deployment of the readiness check (``/healthz``): a fixed two-feature logistic
    regression served through the real path — state, API-key check, contract, model call, spool append.
    Its key is random per process and never leaves it."""

    version_id = -1

    def __init__(self):
        self._key = None
        self.keys: dict[str, int] = {}
        self._predictor = None
        self.state = DeploymentState(
            id=-1, slug="(readiness probe)", live=True, status_message="", version_id=-1, version_label="probe",
            model_name="probe", input_mode="inline", max_batch=1,
            contract=C.Contract(("x0", "x1"), ("f", "f"), (False, False)), contract_error="", feature_set_id=None,
            task="binary_classification", generation=0)

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = KEY_PREFIX + uuid.uuid4().hex
            self.keys = {key_hash(self._key): -1}
        return self._key

    @property
    def predictor(self):
        if self._predictor is None:
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression()
            lr.coef_, lr.intercept_ = np.array([[1.0, -1.0]]), np.array([0.0])
            lr.classes_, lr.n_features_in_ = np.array([0, 1]), 2
            self._predictor = SklearnPredictor(lr, [0, 1], -1, ["x0", "x1"])
        return self._predictor


CACHE = ServingCache()
ROW_IDS = _RowIds()
PROBE = _Probe()
PROBE_BODY = b'{"instances": [{"x0": 1.0, "x1": 0.5}]}'


def readiness() -> tuple[int, dict]:
    """(status, body) of ``/healthz``: 200 only when a prediction goes through the real path."""
    rid = new_request_id()
    resp = predict(Request(slug=PROBE.state.slug, content_type="application/json", content_length=len(PROBE_BODY),
                           authorization=f"Bearer {PROBE.key}", api_key="", read=io.BytesIO(PROBE_BODY).read,
                           request_id=rid), probe=PROBE.state)
    if resp.status != 200:
        try:
            detail = orjson.loads(resp.body).get("detail", "")
        except orjson.JSONDecodeError:  # pragma: no cover
            detail = ""
        return 503, {"status": "unavailable", "detail": f"The probe prediction failed ({resp.status}): {detail}"}
    st = CACHE._state
    live = [d for d in st.deployments.values() if d.live] if st is not None else []
    return 200, {"status": "ok", "state": {
        "source": st.source, "generation": st.generation, "deployments": len(st.deployments), "live": len(live),
        "outage_since": st.outage_since}, "models": {"cached": len(CACHE._models), "bytes": CACHE.model_bytes}}


# --- the request ---------------------------------------------------------------------------------


@dataclass
class Request:
    slug: str
    content_type: str
    content_length: int | None
    authorization: str
    api_key: str
    read: object  # callable(n) -> bytes
    request_id: str


@dataclass
class Response:
    status: int
    body: bytes
    request_id: str
    close: bool = False
    retry_after: int | None = None


def _json(obj) -> bytes:
    """Compact JSON (orjson: ~5x the stdlib). Callers pass finite numbers only (NaN would become null)."""
    return orjson.dumps(obj)


def _error_body(exc: ServingError, request_id: str) -> bytes:
    return _json({"detail": exc.detail, "errors": exc.errors, "request_id": request_id})


def _authenticate(req: Request) -> tuple[int, ServingState]:
    """(the id of the deployment the request's API key belongs to, the serving state it was checked in);
    401 without a valid key."""
    key = req.api_key
    if not key and req.authorization:
        scheme, _, value = req.authorization.partition(" ")
        if scheme.lower() == "bearer":
            key = value.strip()
    if not key:
        raise ServingError(401, "Missing API key: send 'Authorization: Bearer sdk_…' (create a key on the "
                                "deployment's page)", reason="unauthenticated")
    if key.startswith("slw_"):
        raise ServingError(401, "This is a personal API token (slw_…); /predict takes a deployment API key "
                                "(sdk_…, created on the deployment's page)", reason="unauthenticated")
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        raise ServingError(401, "Invalid or revoked API key", reason="unauthenticated")
    st = CACHE.state()
    owner = CACHE.key_owner(key, st)
    if owner is None:
        raise ServingError(401, "Invalid or revoked API key", reason="unauthenticated")
    return owner, st


def _read_body(req: Request) -> bytes:
    limit = hot().max_body_bytes
    ctype = req.content_type.split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise ServingError(415, f"Send the body as application/json (got {ctype or 'no content type'!r})",
                           reason="unsupported_media_type")
    if req.content_length is not None:
        if req.content_length > limit:
            raise ServingError(413, f"The body of {req.content_length:,} bytes is larger than the limit of "
                                    f"{limit:,} bytes", reason="too_large")
        return req.read(req.content_length) if req.content_length else b""
    raw = req.read(limit + 1)
    if len(raw) > limit:
        raise ServingError(413, f"The body is larger than the limit of {limit:,} bytes", reason="too_large")
    return raw


def _features(state: DeploymentState, body: dict):
    """(matrix, inputs per row, entity keys or None)."""
    try:
        items = C.split_body(body, input_mode=state.input_mode, max_batch=state.max_batch)
        if state.input_mode == "inline":
            contract = state.contract
            if contract.numeric:
                return C.rows_to_matrix(items, contract), items, None
            return C.rows_to_frame(items, contract), items, None
        keys = C.check_entity_keys(items)
    except C.ContractError as exc:
        raise ServingError(exc.status, exc.message, exc.errors, reason="invalid_input") from exc
    return _entity_features(state, keys)


def _entity_features(state: DeploymentState, keys: list[str]):
    from apps.common.errors import ApplicationError

    try:
        if state.online_plan is not None:  # the plan from the serving state: no read of the feature set
            from apps.features.online import online_store
            from apps.features.services import online_features_with_plan

            store = online_store()
            st = CACHE._state
            down = store.name == "database" and st is not None and st.outage_since is not None

            def read(view_ids, ks):
                return ONLINE.read_through(store.read_served, view_ids, ks, store_down=down)

            values = online_features_with_plan(plan=state.online_plan, entity_keys=keys, read=read)
        else:  # a state snapshot written before plans were kept in it
            from apps.features.models import FeatureSet
            from apps.features.services import online_features_get

            feature_set = FeatureSet.objects.get(pk=state.feature_set_id)
            values = online_features_get(feature_set=feature_set, entity_keys=keys)
    except ApplicationError as exc:
        raise ServingError(exc.status_code, exc.message, exc.errors, reason="online_features") from exc
    except NotCached as exc:
        raise ServingError(503, f"The online feature store is unreachable and this server holds no copy of the "
                                f"values of entity {exc.key!r}; retry shortly", reason="online_unavailable",
                           retry_after=RETRY_AFTER_S) from exc
    except DatabaseError as exc:
        _reset_db()
        raise ServingError(503, "The online feature store is unavailable; retry shortly",
                           reason="online_unavailable", retry_after=RETRY_AFTER_S) from exc
    rows = _online_rows(values, keys)
    try:
        typed = C.online_rows(rows, state.contract, keys)
    except C.ContractError as exc:
        raise ServingError(exc.status, exc.message, exc.errors, reason="online_missing") from exc
    # the log keeps the declared types (a bool stays true/false, as in the reference profile)
    return C.typed_rows_to_model_input(typed, state.contract), typed, keys


def _online_rows(values, keys: list[str]) -> list[dict]:
    """Normalise what the online store returns (dict by key, or list in key order) to dicts."""
    if isinstance(values, dict):
        return [values.get(k) or {} for k in keys]
    out = []
    for item in values:
        if isinstance(item, dict) and "values" in item and isinstance(item["values"], dict):
            out.append(item["values"])
        else:
            out.append(item or {})
    return out


def _to_json_list(arr) -> list:
    if isinstance(arr, np.ndarray):
        return arr.tolist()
    return [v.item() if hasattr(v, "item") else v for v in arr]


def _has_missing(X) -> bool:
    if isinstance(X, np.ndarray):
        return bool(np.isnan(X).any())
    return bool(X.isna().to_numpy().any())


def _non_finite_output(matrix, what: str):
    if _has_missing(matrix):
        raise ServingError(422, "The model could not score this input: it does not accept missing values (null); "
                                "send a number for every feature", reason="model_input")
    raise ServingError(500, f"The model returned a non-finite {what}", reason="model_output")


def predict(req: Request, *, probe: DeploymentState | None = None) -> Response:
    """Answer one request. ``probe`` (the readiness check) replaces the deployment looked up by slug
    with the built-in probe deployment; everything else runs the same path."""
    started = time.perf_counter()
    rid = req.request_id
    state = None
    version_id = None
    try:
        hs = hot()
        if req.content_length is not None and req.content_length > hs.max_body_bytes:
            # Refuse before reading a byte (and before anything else): the body is never read.
            raise ServingError(413, f"The body of {req.content_length:,} bytes is larger than the limit of "
                                    f"{hs.max_body_bytes:,} bytes", reason="too_large")
        # Credentials first: without a valid key the answer is 401 whether or not the slug exists.
        key_owner, st = _authenticate(req)  # the serving state must be available (database or snapshot)
        if probe is None:
            state = CACHE.deployment(req.slug, st)  # a slug it does not know is checked for NUL/surrogates first (422)
        else:
            state = probe
        version_id = state.version_id
        if key_owner != state.id:
            raise ServingError(403, f"This API key belongs to another deployment, not {state.slug!r}",
                               reason="forbidden")
        if not state.live:
            raise ServingError(503, f"Deployment {state.slug!r} is paused"
                               + (f": {state.status_message}" if state.status_message else ""), reason="paused")
        if state.contract is None or state.contract_error:
            raise ServingError(503, f"Deployment {state.slug!r} cannot serve: {state.contract_error}",
                               reason="bad_contract")
        raw = _read_body(req)
        try:
            body = C.parse_body(raw)
        except C.ContractError as exc:
            raise ServingError(exc.status, exc.message, exc.errors, reason="invalid_input") from exc
        matrix, inputs, keys = _features(state, body)
        # Canary: each entity key of a batch is answered by the side its own key maps to (the batch is split);
        # by request id, the whole request goes to one side.
        if state.canary_version_id is None:
            sides = [(None, list(range(len(inputs))))]
        elif state.canary_sticky == "entity" and keys:
            hits = [_canary_hit(state, k) for k in keys]
            sides = [(None, [i for i, h in enumerate(hits) if not h]),
                     (state.canary_version_id, [i for i, h in enumerate(hits) if h])]
            sides = [s for s in sides if s[1]]
        else:
            sides = [(state.canary_version_id if _canary_hit(state, rid) else None, list(range(len(inputs))))]
        split = len(sides) > 1
        n = len(inputs)
        ids = ROW_IDS.take(n)
        out_rows: list = [None] * n
        records = []  # (version id, log rows)
        for side_version, idx in sides:
            predictor, version_id = CACHE.predictor(state, side_version)
            sub = matrix if len(idx) == n else matrix[idx]
            labels, probs_list, ckeys = _score(predictor, sub)
            label = state.canary_version_label if side_version is not None else state.version_label
            log_rows = []
            for j, i in enumerate(idx):
                p = dict(zip(ckeys, probs_list[j], strict=True)) if probs_list is not None else None
                row = {"request_id": ids[i], "prediction": labels[j], "probabilities": p}
                if split:
                    row["model_version"] = {"id": version_id, "version": label}
                out_rows[i] = row
                log_rows.append([ids[i], inputs[i], labels[j], p, keys[i] if keys else None])
            records.append((version_id, label, log_rows))
        # The top level names the version that answered (with a split batch: production; each row names its own).
        version_id, version_label = (records[0][0], records[0][1]) if not split else (state.version_id,
                                                                                     state.version_label)
        ts = time.time()
        payload = _json({"request_id": rid, "deployment": state.slug,
                         "model_version": {"id": version_id, "model": state.model_name, "version": version_label},
                         "predictions": out_rows})
        latency = time.perf_counter() - started
        # The log record is durable in the spool BEFORE the response leaves (see logpipe / spool).
        if probe is not None:
            logpipe.record_health(ts=ts)  # the same durable append; the drainer skips it
            return Response(200, payload, rid)
        for vid, _, log_rows in records:  # one record per version: the logged version is per row
            logpipe.record_prediction(deployment_id=state.id, version_id=vid, batch_id=rid, ts=ts,
                                      latency_ms=latency * 1000, rows=log_rows)
            metrics.observe_ok(state.slug, str(vid), len(log_rows), latency)  # never raises
        if hs.access_log:
            _access_log(logging.INFO, "predict", {"request_id": rid, "deployment": state.slug,
                                                  "version_id": version_id, "rows": n, "status": 200,
                                                  "latency_ms": round(latency * 1000, 3)})
        return Response(200, payload, rid)
    except ServingError as exc:
        return _fail(exc, rid, state, version_id, started)
    except Exception:  # noqa: BLE001 - never an HTML page or a hang: a clean 500 JSON
        logger.exception("Prediction failed", extra={"request_id": rid, "deployment": req.slug})
        exc = ServingError(500, "Internal error while predicting; the request id identifies it in the logs",
                           reason="internal")
        return _fail(exc, rid, state, version_id, started)


def _fail(exc: ServingError, rid: str, state, version_id, started: float) -> Response:
    dep_label = state.slug if state is not None else "-"
    ver_label = str(version_id) if version_id is not None else "-"
    metrics.safely(metrics.observe_error, dep_label, ver_label, exc.status, exc.reason, time.perf_counter() - started)
    if state is not None and version_id is not None and exc.status not in (401, 403) and state.id > 0:
        try:
            logpipe.record_error(deployment_id=state.id, version_id=version_id, ts=time.time(), status=exc.status)
        except OSError:  # pragma: no cover - a full disk must not turn a 4xx into a 500
            logger.exception("Could not spool an error event")
    level = logging.ERROR if exc.status >= 500 else logging.INFO
    _access_log(level, exc.detail, {"request_id": rid, "deployment": dep_label, "status": exc.status,
                                    "reason": exc.reason})
    close = exc.status == 413
    return Response(exc.status, _error_body(exc, rid), rid, close=close, retry_after=exc.retry_after)


# The access lines below WARNING are batched and written every SERVING_OBSERVABILITY_FLUSH_S (and at a worker's exit).
_ACCESS = HotPathLog(logger, pathname=__file__, func="predict",
                     batch_interval=lambda: hot().flush_s,
                     on_flush_error=lambda: metrics.failed("access_log"))


def _access_log(level: int, msg: str, extra: dict) -> None:
    """One log line (``logger.log`` without its per-record stack walk and look-ups: ``HotPathLog``); a failing
    handler or formatter is counted, never a failed request."""
    try:
        _ACCESS.log(level, msg, extra)
    except Exception:  # noqa: BLE001
        metrics.failed("access_log")


def new_request_id() -> str:
    return ROW_IDS.take(1)[0]


def request_id_from(header: str) -> str:
    """The caller's X-Request-ID when it is a UUID (it is stored as one), else a fresh id."""
    if header and len(header) <= 40:
        try:
            return str(uuid.UUID(header))
        except ValueError:
            pass
    return new_request_id()


# --- WSGI adapter ---------------------------------------------------------------------------------

PREFIX = "/api/v1/deployments/"
SUFFIX = "/predict"
_STATUS = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden",
           404: "404 Not Found", 405: "405 Method Not Allowed", 413: "413 Payload Too Large",
           415: "415 Unsupported Media Type", 422: "422 Unprocessable Entity", 500: "500 Internal Server Error",
           503: "503 Service Unavailable"}


def _wsgi_request(environ, slug: str) -> Request:
    length = environ.get("CONTENT_LENGTH") or ""
    try:
        content_length = int(length) if length else None
    except ValueError:
        content_length = None
    rid = request_id_from(environ.get("HTTP_X_REQUEST_ID", ""))
    return Request(slug=slug, content_type=environ.get("CONTENT_TYPE", ""), content_length=content_length,
                   authorization=environ.get("HTTP_AUTHORIZATION", ""), api_key=environ.get("HTTP_X_API_KEY", ""),
                   read=environ["wsgi.input"].read, request_id=rid)


class ServingDispatcher:
    """WSGI middleware: answers POST /api/v1/deployments/<slug>/predict and GET /healthz itself."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            status, payload = readiness()
            body = _json(payload)
            start_response(_STATUS[status], [*JSON_HEADERS, ("Content-Length", str(len(body))),
                                             ("Cache-Control", "no-store")])
            return [body]
        if path.startswith(PREFIX) and path.endswith(SUFFIX):
            slug = path[len(PREFIX):-len(SUFFIX)]
            if slug and "/" not in slug:
                if environ.get("REQUEST_METHOD") != "POST":
                    body = _json({"detail": "Use POST for predictions", "errors": []})
                    start_response(_STATUS[405], [*JSON_HEADERS, ("Allow", "POST"),
                                                  ("Content-Length", str(len(body)))])
                    return [body]
                resp = predict(_wsgi_request(environ, slug))
                headers = [*JSON_HEADERS, ("Content-Length", str(len(resp.body))), ("X-Request-ID", resp.request_id)]
                if resp.close:
                    headers.append(("Connection", "close"))
                if resp.retry_after is not None:
                    headers.append(("Retry-After", str(resp.retry_after)))
                start_response(_STATUS.get(resp.status, f"{resp.status} Error"), headers)
                return [resp.body]
        return self.app(environ, start_response)


def warm_up() -> None:
    """Close connections that a previous request left broken (used by the Django view adapter)."""
    close_old_connections()


def warm_up_imports() -> None:
    """Pay the one-off costs before serving (gunicorn master, before forking workers): the model
    libraries and the registry's skops allowlist (several seconds on first use)."""
    try:
        import onnxruntime  # noqa: F401
        import sklearn.ensemble  # noqa: F401
        import sklearn.linear_model  # noqa: F401

        from apps.registry.allowlist import skops_trusted_types

        skops_trusted_types()
    except Exception:  # noqa: BLE001 - warming up is best effort
        logger.warning("Serving warm-up of imports failed", exc_info=True)


def warm_up_models() -> None:
    """Before a gunicorn worker accepts requests: read the whole serving state (from the database, else
    the host's snapshot file) and load the models of every live deployment this pool serves, within
    ``SERVING_MODEL_CACHE_BYTES`` — so the worker can answer every deployment even if the database is down."""
    try:
        st = CACHE.state()
    except ServingError:
        logger.warning("No serving state at start (database unreachable and no snapshot); loading on demand")
        return
    if st.source == "snapshot" and st.online_views:  # database down: the online values the drainer kept
        on_file = serving_state.online_snapshot_read(settings.SERVING_ONLINE_SNAPSHOT)
        for vid in st.online_views:
            if vid in on_file:
                ONLINE.preload(vid, on_file[vid]["stamp"], on_file[vid]["rows"], stale=on_file[vid].get("stale", False))
    for vid in st.serving_version_ids():
        if CACHE.model_bytes >= settings.SERVING_MODEL_CACHE_BYTES:
            logger.warning("Serving model cache budget reached during preload; the rest load on first use",
                           extra={"budget_bytes": settings.SERVING_MODEL_CACHE_BYTES})
            break
        try:
            CACHE.load(vid, reason="preload")
        except Exception:  # noqa: BLE001 - the first request will try again (and answer a clean error)
            logger.warning("Serving preload of a model version failed", extra={"version_id": vid}, exc_info=True)
            _reset_db()

"""The prediction hot path: ``POST /api/v1/deployments/<slug>/predict``.

Transport-free core (``predict``) used by two thin adapters: a WSGI dispatcher that answers this one
URL before Django's middleware (``ServingDispatcher``, wired in ``portal/wsgi.py``), and a plain Django
view (``views.predict_view``, for the test client and runserver). Both give identical answers.

Per request, in the common case, nothing touches the database: the deployment's state, the API-key
hashes and the model (by version id) are cached in the process. Every ``SERVING_STATE_TTL`` seconds
(1 s) one tiny query reads the ``ServingGeneration`` counter; when it changed, entries are reloaded on
their next use — so a pause, a revoked key or a new production version reach every process within
~1 s, without a restart. When the database is unreachable the last known state keeps serving (and
the prediction log spools locally), so an outage of PostgreSQL does not stop predictions that need
no online features.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field

import numpy as np
import orjson
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from sklearn import config_context as sklearn_config

from apps.common.secrets import secret_hash

from . import contract as C
from . import logpipe, metrics

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


class ServingError(Exception):
    def __init__(self, status: int, detail: str, errors: list | None = None, *, reason: str = ""):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.reason = reason or str(status)


class _RowIds:
    """Per-process unique ids: 64 random bits + a counter, shaped as UUIDs (cheap, no syscall)."""

    def __init__(self):
        self._pid = None
        self._lock = threading.Lock()

    def take(self, n: int) -> list[str]:
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._high = int.from_bytes(os.urandom(8), "big") << 64
                self._n = int.from_bytes(os.urandom(3), "big") << 32
            start = self._n
            self._n += n
        return [str(uuid.UUID(int=self._high | ((start + i) & 0xFFFFFFFFFFFFFFFF))) for i in range(n)]


class ServingCache:
    def __init__(self):
        self._lock = threading.RLock()
        self._generation = None
        self._checked = 0.0
        self._deployments: dict[str, DeploymentState] = {}
        self._keys: dict[str, tuple[int | None, int]] = {}  # hash → (deployment id or None, generation)
        self._predictors: dict[int, object] = {}

    def clear(self) -> None:
        with self._lock:
            self._generation, self._checked = None, 0.0
            self._deployments.clear()
            self._keys.clear()

    # -- generation --------------------------------------------------------------------------
    def _current_generation(self) -> int:
        now = time.monotonic()
        if self._generation is not None and now - self._checked < settings.SERVING_STATE_TTL:
            return self._generation
        self._checked = now
        from .models import ServingGeneration

        try:
            value = ServingGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0
        except DatabaseError:
            _reset_db()
            logger.warning("Serving state check failed (database unreachable); using the cached state")
            return self._generation if self._generation is not None else -1
        self._generation = value
        return value

    # -- deployments ---------------------------------------------------------------------------
    def deployment(self, slug: str) -> DeploymentState:
        gen = self._current_generation()
        state = self._deployments.get(slug)
        if state is not None and (state.generation == gen or gen == -1):
            return state
        try:
            fresh = _load_deployment(slug, gen)
        except DatabaseError as exc:
            _reset_db()
            if state is not None:
                return state
            raise ServingError(503, "The deployment's state cannot be read right now (database unavailable); "
                                    "retry shortly", reason="db_unavailable") from exc
        if fresh is None:
            self._deployments.pop(slug, None)
            raise ServingError(404, f"No deployment named {slug!r}", reason="not_found")
        self._deployments[slug] = fresh
        return fresh

    def key_deployment(self, plaintext: str) -> int | None:
        """The deployment id a key belongs to (None: unknown or revoked)."""
        gen = self._generation if self._generation is not None else -1
        h = key_hash(plaintext)
        hit = self._keys.get(h)
        if hit is not None and (hit[1] == gen or gen == -1):
            return hit[0]
        from .models import DeploymentApiKey

        try:
            row = (DeploymentApiKey.objects.filter(key_hash=h, revoked_at__isnull=True)
                   .values_list("deployment_id", flat=True).first())
        except DatabaseError as exc:
            _reset_db()
            if hit is not None:
                return hit[0]
            raise ServingError(503, "API keys cannot be checked right now (database unavailable); retry shortly",
                               reason="db_unavailable") from exc
        if len(self._keys) > 50_000:
            self._keys.clear()
        self._keys[h] = (row, gen)
        return row

    # -- models --------------------------------------------------------------------------------
    def predictor(self, state: DeploymentState, version_id: int | None = None):
        version_id = state.version_id if version_id is None else version_id
        pred = self._predictors.get(version_id)
        if pred is not None:
            return pred, version_id
        with self._lock:
            pred = self._predictors.get(version_id)
            if pred is None:
                pred = _load_predictor(version_id)
                self._predictors[version_id] = pred
                if len(self._predictors) > settings.SERVING_MODEL_CACHE_SIZE:
                    oldest = next(iter(self._predictors))
                    if oldest != version_id:
                        self._predictors.pop(oldest, None)
        return pred, version_id


def _reset_db() -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - the connection is already broken
        pass


def _load_deployment(slug: str, gen: int) -> DeploymentState | None:
    from .models import Deployment

    dep = (Deployment.objects.select_related("production_version", "registered_model")
           .filter(slug=slug).first())
    if dep is None:
        return None
    model = dep.registered_model
    try:
        contract = C.Contract.from_spec(model.input_contract or [])
        contract_error = "" if contract.width else "The model has no input contract"
    except (ValueError, KeyError, TypeError) as exc:
        contract, contract_error = None, str(exc)
    version = dep.production_version
    canary = _load_canary(dep.pk, version.pk)
    return DeploymentState(
        id=dep.pk, slug=dep.slug, live=dep.is_live, status_message=dep.status_message,
        version_id=version.pk, version_label=f"v{version.version}", model_name=model.name,
        input_mode=dep.input_mode, max_batch=min(dep.max_batch, settings.SERVING_MAX_BATCH), contract=contract,
        contract_error=contract_error, feature_set_id=getattr(model, "feature_set_id", None), task=model.task,
        generation=gen, **canary,
    )


def _load_canary(deployment_id: int, production_id: int) -> dict:
    from .models import Canary

    c = Canary.objects.select_related("candidate").filter(deployment_id=deployment_id).first()
    if c is None or c.candidate_id == production_id or c.percent <= 0:
        return {}
    return {"canary_version_id": c.candidate_id, "canary_version_label": f"v{c.candidate.version}",
            "canary_percent": float(c.percent), "canary_sticky": c.sticky_by}


def _canary_pick(state: DeploymentState, rid: str, keys) -> bool:
    """Sticky split: the same entity key (or request id) always lands on the same side."""
    key = keys[0] if (state.canary_sticky == "entity" and keys) else rid
    return zlib.crc32(f"{state.id}:{key}".encode()) % 10_000 < state.canary_percent * 100


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

    def __init__(self, estimator, classes, version_id: int, feature_names: list[str]):
        self.estimator = estimator
        self.classes = classes
        self.version_id = version_id
        self.feature_names = feature_names
        self.format = "skops"
        self._classes_arr = np.asarray(getattr(estimator, "classes_", classes))
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


def _load_predictor(version_id: int):
    """The registry decides the form (verified ONNX, else skops); for the scikit-learn form of a plain
    argmax classifier serving uses a leaner call path with identical answers."""
    from apps.registry.loading import load_estimator, load_predictor
    from apps.registry.models import ModelVersion

    version = ModelVersion.objects.select_related("model").get(pk=version_id)
    started = time.perf_counter()
    predictor = load_predictor(version)
    if predictor.format == "skops" and predictor.classes is not None:
        estimator = load_estimator(version)
        final = _final_step(estimator)
        if type(final).__name__ in ARGMAX_CLASSIFIERS and list(getattr(final, "classes_", [])) == list(
                predictor.classes):
            predictor = SklearnPredictor(estimator, predictor.classes, version_id, predictor.feature_names)
    logger.info("Loaded model version for serving", extra={"version_id": version_id, "format": predictor.format,
                                                           "load_ms": round((time.perf_counter() - started) * 1000, 1)})
    return predictor


CACHE = ServingCache()
ROW_IDS = _RowIds()


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


def _json(obj) -> bytes:
    """Compact JSON (orjson: ~5x the stdlib). Callers pass finite numbers only (NaN would become null)."""
    return orjson.dumps(obj)


def _error_body(exc: ServingError, request_id: str) -> bytes:
    return _json({"detail": exc.detail, "errors": exc.errors, "request_id": request_id})


def _authenticate(req: Request, state: DeploymentState) -> None:
    key = req.api_key
    if not key and req.authorization:
        scheme, _, value = req.authorization.partition(" ")
        if scheme.lower() == "bearer":
            key = value.strip()
    if not key:
        raise ServingError(401, "Missing API key: send 'Authorization: Bearer sdk_…' (create a key on the "
                                "deployment's page)", reason="unauthenticated")
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        raise ServingError(401, "Invalid or revoked API key", reason="unauthenticated")
    owner = CACHE.key_deployment(key)
    if owner is None:
        raise ServingError(401, "Invalid or revoked API key", reason="unauthenticated")
    if owner != state.id:
        raise ServingError(403, f"This API key belongs to another deployment, not {state.slug!r}", reason="forbidden")


def _read_body(req: Request) -> bytes:
    limit = settings.SERVING_MAX_BODY_BYTES
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
            return C.rows_to_matrix(items, state.contract), items, None
        keys = C.check_entity_keys(items)
    except C.ContractError as exc:
        raise ServingError(exc.status, exc.message, exc.errors, reason="invalid_input") from exc
    return _entity_features(state, keys)


def _entity_features(state: DeploymentState, keys: list[str]):
    from apps.common.errors import ApplicationError

    try:
        from apps.features.models import FeatureSet
        from apps.features.services import online_features_get

        feature_set = FeatureSet.objects.get(pk=state.feature_set_id)
        values = online_features_get(feature_set=feature_set, entity_keys=keys)
    except ApplicationError as exc:
        raise ServingError(exc.status_code, exc.message, exc.errors, reason="online_features") from exc
    except DatabaseError as exc:
        _reset_db()
        raise ServingError(503, "The online feature store is unavailable; retry shortly",
                           reason="online_unavailable") from exc
    rows = _online_rows(values, keys)
    try:
        matrix = C.values_to_matrix(rows, state.contract, keys)
    except C.ContractError as exc:
        raise ServingError(exc.status, exc.message, exc.errors, reason="online_missing") from exc
    inputs = [{n: (None if np.isnan(v) else float(v)) for n, v in zip(state.contract.names, row, strict=True)}
              for row in matrix]
    return matrix, inputs, keys


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


def _non_finite_output(matrix, what: str):
    if np.isnan(matrix).any():
        raise ServingError(422, "The model could not score this input: it does not accept missing values (null); "
                                "send a number for every feature", reason="model_input")
    raise ServingError(500, f"The model returned a non-finite {what}", reason="model_output")


def predict(req: Request) -> Response:
    started = time.perf_counter()
    rid = req.request_id
    state = None
    version_id = None
    try:
        if req.content_length is not None and req.content_length > settings.SERVING_MAX_BODY_BYTES:
            # Refuse before reading a byte (and before anything else): the body is never read.
            raise ServingError(413, f"The body of {req.content_length:,} bytes is larger than the limit of "
                                    f"{settings.SERVING_MAX_BODY_BYTES:,} bytes", reason="too_large")
        state = CACHE.deployment(req.slug)
        version_id = state.version_id
        _authenticate(req, state)
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
        version_label = state.version_label
        if state.canary_version_id is not None and _canary_pick(state, rid, keys):
            predictor, version_id = CACHE.predictor(state, state.canary_version_id)
            version_label = state.canary_version_label
        else:
            predictor, version_id = CACHE.predictor(state)
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
        labels = _to_json_list(labels)
        classes = [c.item() if hasattr(c, "item") else c for c in (predictor.classes or [])] if probs is not None else None
        probs_list = probs.tolist() if probs is not None else None
        ids = ROW_IDS.take(len(labels))
        ts = time.time()
        out_rows, log_rows = [], []
        ckeys = [str(c) for c in classes] if classes is not None else None
        for i, label in enumerate(labels):
            p = dict(zip(ckeys, probs_list[i], strict=True)) if probs_list is not None else None
            out_rows.append({"request_id": ids[i], "prediction": label, "probabilities": p})
            log_rows.append([ids[i], inputs[i], label, p, keys[i] if keys else None])
        payload = _json({"request_id": rid, "deployment": state.slug,
                         "model_version": {"id": version_id, "model": state.model_name,
                                           "version": version_label},
                         "predictions": out_rows})
        latency = time.perf_counter() - started
        # The log record is durable in the spool BEFORE the response leaves (see logpipe / spool).
        logpipe.record_prediction(deployment_id=state.id, version_id=version_id, batch_id=rid, ts=ts,
                                  latency_ms=latency * 1000, rows=log_rows)
        metrics.observe_ok(state.slug, str(version_id), len(labels), latency)
        if settings.SERVING_ACCESS_LOG:
            logger.info("predict", extra={"request_id": rid, "deployment": state.slug, "version_id": version_id,
                                          "rows": len(labels), "status": 200,
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
    metrics.REQUESTS.labels(dep_label, ver_label, str(exc.status)).inc()
    metrics.ERRORS.labels(dep_label, ver_label, exc.reason).inc()
    metrics.LATENCY.labels(dep_label, ver_label).observe(time.perf_counter() - started)
    if state is not None and version_id is not None and exc.status not in (401, 403):
        try:
            logpipe.record_error(deployment_id=state.id, version_id=version_id, ts=time.time(), status=exc.status)
        except OSError:  # pragma: no cover - a full disk must not turn a 4xx into a 500
            logger.exception("Could not spool an error event")
    level = logging.ERROR if exc.status >= 500 else logging.INFO
    logger.log(level, exc.detail, extra={"request_id": rid, "deployment": dep_label, "status": exc.status,
                                         "reason": exc.reason})
    close = exc.status == 413
    return Response(exc.status, _error_body(exc, rid), rid, close=close)


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
    """WSGI middleware: answers POST /api/v1/deployments/<slug>/predict and GET /metrics itself."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
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
    """Load the production versions of live deployments into this process (a gunicorn worker, before
    it accepts requests), so the first request does not pay for it."""
    from .models import Deployment

    try:
        version_ids = set(Deployment.objects.filter(status="live").values_list("production_version_id", flat=True))
        for vid in version_ids:
            if vid not in CACHE._predictors and len(CACHE._predictors) < settings.SERVING_MODEL_CACHE_SIZE:
                CACHE._predictors[vid] = _load_predictor(vid)
    except Exception:  # noqa: BLE001 - the first request will load it instead
        logger.warning("Serving warm-up of models failed", exc_info=True)
        _reset_db()

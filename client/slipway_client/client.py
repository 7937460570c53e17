"""The Slipway notebook client: the documented public API (``/api/v1``) over requests, nothing else."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from .artifacts import serialize
from .contract import feature_names, infer_contract, infer_task, rows

API = "/api/v1"
RETRY_STATUSES = (502, 503, 504)


class SlipwayError(Exception):
    """An error answer of the portal: ``status``, ``detail`` and the per-field ``errors``."""

    def __init__(self, status: int, detail: str, errors: list | None = None):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.errors = errors or []


class ValidationRejected(SlipwayError):
    """The portal's validation rejected the uploaded version (``detail`` says why)."""

    def __init__(self, version: ModelVersion):
        super().__init__(422, f"{version.model} v{version.version} was rejected: {version.status_reason}")
        self.version = version


@dataclass
class ModelVersion:
    project: str
    raw: dict = field(repr=False)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["raw"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __repr__(self) -> str:
        r = self.raw
        return (f"ModelVersion({self.project}/{r['model']} v{r['version']}, status={r['status']}, "
                f"serving={r.get('serving_format') or '-'}, metrics={r.get('metrics')})")


@dataclass
class Deployment:
    client: Slipway = field(repr=False)
    raw: dict = field(repr=False)
    key: str | None = field(default=None, repr=False)

    @property
    def slug(self) -> str:
        return self.raw["slug"]

    def predict(self, X, **kwargs) -> dict:
        return self.client.predict(self.slug, X, key=self.key, max_batch=self.raw.get("max_batch"), **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["raw"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __repr__(self) -> str:
        return f"Deployment({self.raw['slug']}, status={self.raw['status']}, version={self.raw['production_version']})"


def _print_progress(pct: int, message: str) -> None:
    sys.stdout.write(f"\r[{pct:3d}%] {message:<60}")
    if pct >= 100:
        sys.stdout.write("\n")
    sys.stdout.flush()


class Slipway:
    """``Slipway(url, token)``: ``url`` is the portal (e.g. ``http://localhost:8000``), ``token`` a personal API
    token (``slw_…``, from your account page or ``POST /api/v1/tokens``). Both default to the environment
    variables ``SLIPWAY_URL`` and ``SLIPWAY_TOKEN``."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 60.0,
                 retries: int = 3, session: requests.Session | None = None):
        self.url = (url or os.environ.get("SLIPWAY_URL") or "http://localhost:8000").rstrip("/")
        self.token = token or os.environ.get("SLIPWAY_TOKEN")
        if not self.token:
            raise ValueError("Give a token (Slipway(url, token=...)) or set SLIPWAY_TOKEN")
        self.timeout = timeout
        self.retries = retries
        self.session = session or requests.Session()

    # --- transport ----------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, token: str | None = None, expect=(200,), **kwargs) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token}", **kwargs.pop("headers", {})}
        files_factory = kwargs.pop("files_factory", None)
        # only reads and writes carrying an Idempotency-Key are retried (a retried deploy or predict could
        # act twice)
        retries = self.retries if method == "GET" or "Idempotency-Key" in headers else 0
        last_exc = None
        for attempt in range(retries + 1):
            if files_factory is not None:
                kwargs["files"] = files_factory()
            try:
                resp = self.session.request(method, self.url + path, headers=headers, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_exc = exc
            else:
                if resp.status_code not in RETRY_STATUSES or attempt == retries:
                    return self._answer(resp, expect)
            if attempt < retries:
                time.sleep(min(0.5 * 2 ** attempt, 5))
        raise SlipwayError(0, f"Could not reach {self.url}: {last_exc}")

    @staticmethod
    def _answer(resp: requests.Response, expect) -> Any:
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = None
        if resp.status_code in expect:
            return body
        if isinstance(body, dict) and "detail" in body:
            detail = body["detail"] if isinstance(body["detail"], str) else str(body["detail"])
            raise SlipwayError(resp.status_code, detail, body.get("errors"))
        raise SlipwayError(resp.status_code, (resp.text or resp.reason or "")[:500])

    # --- projects and models ------------------------------------------------------------------

    def ensure_project(self, slug: str, *, name: str | None = None, description: str = "") -> dict:
        """The project ``slug``, created (you become its owner) when it does not exist yet."""
        try:
            return self._request("GET", f"{API}/projects/{slug}")
        except SlipwayError as exc:
            if exc.status != 404:
                raise
        return self._request("POST", f"{API}/projects", json={"slug": slug, "name": name or slug,
                                                                "description": description}, expect=(201,))

    def ensure_model(self, *, project: str, name: str, task: str, input_contract: list[dict],
                     description: str = "") -> dict:
        """The registered model ``name`` of ``project``, created with ``task`` and ``input_contract`` if new."""
        try:
            return self._request("GET", f"{API}/projects/{project}/models/{name}")
        except SlipwayError as exc:
            if exc.status != 404:
                raise
        return self._request("POST", f"{API}/projects/{project}/models",
                             json={"name": name, "task": task, "input_contract": input_contract,
                                   "description": description}, expect=(201,))

    def get_version(self, *, project: str, name: str, version: int) -> ModelVersion:
        return ModelVersion(project, self._request("GET", f"{API}/projects/{project}/models/{name}/versions/{version}"))

    # --- register -------------------------------------------------------------------------------

    def register(self, model, X_holdout, y_holdout, *, project: str, name: str, task: str | None = None,
                 input_contract: list[dict] | None = None, format: str = "auto",  # noqa: A002
                 training_data=None, metrics: dict | None = None, tags: Iterable[str] = (), model_card: str = "",
                 code_ref: str = "", description: str = "", progress: bool | Callable[[int, str], None] = True,
                 wait: bool = True, timeout: float = 900.0, idempotency_key: str | None = None) -> ModelVersion:
        """Register a fitted model as a new version of ``project``/``name`` and wait for its validation.

        The task and input contract are read from the model (``classes_``, ``feature_names_in_``) and the
        holdout DataFrame's dtypes unless given. The model is saved as skops (or as its native XGBoost /
        LightGBM file), uploaded with the holdout under an ``Idempotency-Key`` (a retried upload never makes a
        second version) and validated by the portal: the returned version carries its holdout metrics.
        Raises ``ValidationRejected`` with the portal's reason when the version is rejected."""
        import pandas as pd

        task = task or infer_task(model)
        contract = input_contract or infer_contract(model, X_holdout)
        names = [c["name"] for c in contract]
        self.ensure_model(project=project, name=name, task=task, input_contract=contract, description=description)
        data, filename, _fmt = serialize(model, format)
        target = "target"
        while target in names:
            target = f"_{target}"
        holdout = X_holdout[names].copy()
        holdout[target] = pd.Series(y_holdout).to_numpy() if not isinstance(y_holdout, pd.Series) else y_holdout.values
        holdout_csv = holdout.to_csv(index=False).encode("utf-8")
        train_csv = training_data[names].to_csv(index=False).encode("utf-8") if training_data is not None else None
        key = idempotency_key or hashlib.sha256(data + holdout_csv + uuid.uuid4().bytes).hexdigest()[:40]
        form = {"holdout_target": target, "tags": ",".join(tags), "model_card": model_card, "code_ref": code_ref}
        if metrics:
            import json

            form["uploader_metrics"] = json.dumps({k: float(v) for k, v in metrics.items()})

        def files():
            out = {"artifact": (filename, io.BytesIO(data), "application/octet-stream"),
                   "holdout": ("holdout.csv", io.BytesIO(holdout_csv), "text/csv")}
            if train_csv is not None:
                out["training_data"] = ("training.csv", io.BytesIO(train_csv), "text/csv")
            return out

        raw = self._request("POST", f"{API}/projects/{project}/models/{name}/versions", data=form,
                            files_factory=files, headers={"Idempotency-Key": key}, expect=(202,))
        version = ModelVersion(project, raw)
        return self.wait(version, progress=progress, timeout=timeout) if wait else version

    def wait(self, version: ModelVersion, *, progress: bool | Callable[[int, str], None] = True,
             timeout: float = 900.0, interval: float = 0.5) -> ModelVersion:
        """Poll the version (and its validation job's progress) until it is ready or rejected."""
        report = _print_progress if progress is True else (progress or None)
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if version.status != "validating":
                break
            if time.monotonic() > deadline:
                raise SlipwayError(0, f"Validation of {version.model} v{version.version} did not finish in {timeout:g} s")
            if report and version.job_id:
                job = self._request("GET", f"{API}/jobs/{version.job_id}")
                state = (job["progress"], job["message"] or job["status"])
                if state != last:
                    report(*state)
                    last = state
            time.sleep(interval)
            version = self.get_version(project=version.project, name=version.model, version=version.version)
        if report:
            report(100, f"{version.model} v{version.version}: {version.status}"
                        + (f" ({version.status_reason})" if version.status_reason else ""))
        if version.status == "rejected":
            raise ValidationRejected(version)
        return version

    # --- deploy, predict, outcomes -----------------------------------------------------------------

    def deploy(self, version: ModelVersion, *, slug: str, owner: str | None = None, name: str = "",
               key_name: str = "notebook", go_live: bool = True, override_reason: str = "",
               max_batch: int | None = None) -> Deployment:
        """Deploy ``version`` under the portal-wide ``slug`` and create an API key for it (``Deployment.key``).

        ``owner`` defaults to the project's owner when it has exactly one. A first version goes live only
        through an approved promotion request or, where the project's policy allows it, a project owner's
        ``override_reason`` (audited); ``go_live=False`` creates the deployment paused for a request."""
        project = version.project
        if owner is None and go_live:
            owners = [m["username"] for m in self._request("GET", f"{API}/projects/{project}/members")
                      if m["role"] == "owner"]
            if len(owners) != 1:
                raise ValueError(f"{project} has {len(owners)} owners: pass owner=<username>")
            owner = owners[0]
        body = {"version_id": version.id, "slug": slug, "name": name, "owner": owner, "go_live": go_live,
                "override_reason": override_reason}
        if max_batch is not None:
            body["max_batch"] = max_batch
        raw = self._request("POST", f"{API}/projects/{project}/deployments", json=body, expect=(201,))
        key = self._request("POST", f"{API}/projects/{project}/deployments/{slug}/keys", json={"name": key_name},
                            expect=(201,))
        return Deployment(self, raw, key["key"])

    def predict(self, deployment: str, X, *, key: str | None = None, max_batch: int | None = None,
                columns: list[str] | None = None) -> dict:
        """Predictions of ``deployment`` for the rows of ``X`` (a DataFrame, a list of dicts or one dict).

        ``key`` is the deployment's API key (``sdk_…``); without it the personal token is sent, which the
        prediction endpoint refuses. Large frames are sent in batches of ``max_batch`` rows (default 100)."""
        instances = rows(X, columns)
        batch = max(1, int(max_batch or 100))
        merged: dict = {}
        for start in range(0, len(instances), batch):
            answer = self._request("POST", f"{API}/deployments/{deployment}/predict", token=key,
                                   json={"instances": instances[start:start + batch]})
            if not merged:
                merged = {**answer, "predictions": list(answer["predictions"])}
            else:
                merged["predictions"].extend(answer["predictions"])
        return merged

    def post_outcomes(self, deployment: str, outcomes, *, observed_at=None) -> dict:
        """Ground truth for earlier predictions: ``outcomes`` is a list of ``{"request_id", "label"}`` dicts or
        ``(request_id, label)`` pairs (the request ids ``predict`` returned per row)."""
        from .contract import json_value

        items = []
        for item in outcomes:
            if isinstance(item, dict):
                out = {k: json_value(v) for k, v in item.items()}
            else:
                request_id, label = item
                out = {"request_id": str(request_id), "label": json_value(label)}
            if observed_at is not None and "observed_at" not in out:
                out["observed_at"] = observed_at.isoformat() if hasattr(observed_at, "isoformat") else str(observed_at)
            items.append(out)
        return self._request("POST", f"{API}/deployments/{deployment}/outcomes", json={"outcomes": items})


__all__ = ["Deployment", "ModelVersion", "Slipway", "SlipwayError", "ValidationRejected", "feature_names"]

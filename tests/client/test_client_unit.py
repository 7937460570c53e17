"""The notebook client's own logic without a server: what it reads from models and DataFrames, the files
it writes, and that ``pip install ./client`` installs it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from slipway_client import infer_contract, infer_task, native_format, serialize
from slipway_client.contract import rows

from tests.registry import factories as f

CLIENT = Path(__file__).resolve().parents[2] / "client"


def test_contract_follows_the_models_column_order_and_the_frames_dtypes():
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"b": [1.0, 2.0, np.nan, 4.0], "a": [1, 2, 3, 4], "flag": [True, False, True, False],
                      "town": ["x", "y", "x", "y"]})
    model = LogisticRegression().fit(X[["a", "b"]].fillna(0), [0, 1, 0, 1])
    assert infer_contract(model, X) == [{"name": "a", "type": "int"},
                                        {"name": "b", "type": "float", "nullable": True}]
    assert infer_task(model) == "binary_classification"
    with pytest.raises(ValueError, match="lacks the model's feature"):
        infer_contract(model, X[["a"]])
    with pytest.raises(ValueError, match="must be a pandas DataFrame"):
        infer_contract(model, X.to_numpy())


def test_task_is_read_from_the_model():
    X, y, _ = f.make_classification_frame(n=120, n_classes=3)
    assert infer_task(f.make_booster("lightgbm", "classifier", X, y)) == "multiclass_classification"
    Xr, yr, _ = f.make_regression_frame(n=120)
    assert infer_task(f.make_booster("xgboost", "regressor", Xr, yr)) == "regression"


def test_bare_boosters_with_0_to_k_labels_go_native_everything_else_skops():
    X, y, _ = f.make_classification_frame(n=120)
    xgb_model = f.make_booster("xgboost", "classifier", X, y)
    assert native_format(xgb_model) == "xgboost"
    data, name, fmt = serialize(xgb_model)
    assert (name, fmt) == ("model.ubj", "xgboost") and data[:1] == b"{"
    lgb_str = f.make_booster("lightgbm", "classifier", X, np.where(y == 1, "yes", "no"))
    assert native_format(lgb_str) is None and serialize(lgb_str)[2] == "skops"  # labels need the wrapper
    data, name, fmt = serialize(f.make_booster("lightgbm", "classifier", X, y))
    assert fmt == "lightgbm" and data.startswith(b"tree\nversion=v")
    assert serialize(f.make_hgb_pipeline(X, y))[2] == "skops"


def test_rows_are_json_ready():
    X = pd.DataFrame({"a": np.array([1, 2], dtype="int64"), "b": [0.5, np.nan], "c": ["x", None]})
    assert rows(X) == [{"a": 1, "b": 0.5, "c": "x"}, {"a": 2, "b": None, "c": None}]
    assert type(rows(X)[0]["a"]) is int


def test_the_client_installs_with_pip_from_the_repository(tmp_path):
    import shutil

    source = tmp_path / "client"  # a copy: setuptools writes build/ and *.egg-info next to the sources
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (target / "slipway_client" / "client.py").exists()
    meta = next(target.glob("slipway_client-*.dist-info")) / "METADATA"
    requires = [line.split()[1].split(">")[0].lower() for line in meta.read_text().splitlines()
                if line.startswith("Requires-Dist:")]
    assert sorted(requires) == ["numpy", "pandas", "requests", "scikit-learn", "skops"]


def test_an_upload_answered_503_is_retried_with_the_same_idempotency_key():
    """A tiny HTTP server stands in for a portal behind a restarting proxy: 503 first, then 202."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from slipway_client import Slipway

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - the registered model exists
            self._send(200, {"name": "m"})

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.headers.get("Idempotency-Key"), b'name="artifact"' in body))
            if len(seen) == 1:
                self._send(503, {"detail": "restarting"})
            else:
                self._send(202, {"id": 1, "model": "m", "version": 1, "status": "validating", "job_id": None})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sw = Slipway(f"http://127.0.0.1:{server.server_port}", token="slw_test", retries=2)
        X, y, _ = f.make_classification_frame(n=60)
        version = sw.register(f.make_logreg(X, y), X, y, project="p", name="m", wait=False, progress=False)
    finally:
        server.shutdown()
    assert version.status == "validating" and len(seen) == 2
    assert seen[0] == seen[1] and seen[0][0] and seen[0][1]

"""XGBoost / LightGBM benchmark: the registry's static check and the two serving forms against their floors.

    .venv/bin/python bench/boosters.py

For a 200-tree classifier of each library (20 features):
- static check (apps.registry.boosters) of the native file against the library's own load (the floor);
- single-row prediction through the registry's predictors — the verified ONNX form (onnxruntime, one
  thread) and the native booster (one thread) — against the library's own sklearn wrapper call
  (``predict_proba`` on a one-row array, the floor a notebook sees).
Reports microseconds per call and ratios. Not a test; numbers depend on the machine.
"""

import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")


def per_call(fn, n=2000, repeat=3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def main():
    import lightgbm as lgb
    import numpy as np
    import xgboost as xgb
    from sklearn.datasets import make_classification

    from apps.registry import boosters
    from apps.registry.loading import native_predict_fn, onnx_predict_fn, onnx_session
    from apps.registry.sandbox import convert_booster_to_onnx

    X, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    row = X[:1]
    models = {
        "xgboost": xgb.XGBClassifier(n_estimators=200, max_depth=6, n_jobs=1, random_state=0).fit(X, y),
        "lightgbm": lgb.LGBMClassifier(n_estimators=200, num_leaves=31, n_jobs=1, verbose=-1).fit(X, y),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for library, model in models.items():
            path = os.path.join(tmp, "model.json" if library == "xgboost" else "model.txt")
            if library == "xgboost":
                model.save_model(path)
                load = lambda p=path: xgb.Booster(model_file=p)  # noqa: E731
                check = lambda p=path: boosters.read_xgboost(p)  # noqa: E731
            else:
                model.booster_.save_model(path)
                load = lambda p=path: lgb.Booster(model_file=p)  # noqa: E731
                check = lambda p=path: boosters.read_lightgbm(p)  # noqa: E731
            size = os.path.getsize(path) / 1e6
            t_check, t_load = per_call(check, n=5), per_call(load, n=5)
            with open(path, "rb") as fh:
                native = native_predict_fn(library, fh.read(), [0, 1])
            onx_path = convert_booster_to_onnx(library, path, 20, tmp)
            with open(onx_path, "rb") as fh:
                onnx = onnx_predict_fn(onnx_session(fh.read()), [0, 1])
            t_floor = per_call(lambda m=model: m.predict_proba(row))
            t_native = per_call(lambda f=native: f(row))
            t_onnx = per_call(lambda f=onnx: f(row.astype(np.float32)))
            print(f"{library} (200 trees, {size:.1f} MB file)")
            print(f"  static check       {t_check * 1e3:8.1f} ms   library load {t_load * 1e3:7.1f} ms "
                  f"(check/load = {t_check / t_load:.2f}x)")
            print(f"  1 row, wrapper     {t_floor * 1e6:8.1f} µs   (floor: the library's predict_proba)")
            print(f"  1 row, native form {t_native * 1e6:8.1f} µs   ({t_native / t_floor:.2f}x the floor)")
            print(f"  1 row, ONNX form   {t_onnx * 1e6:8.1f} µs   ({t_onnx / t_floor:.2f}x the floor)")


if __name__ == "__main__":
    import django

    django.setup()
    main()

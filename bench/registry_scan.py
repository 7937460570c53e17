"""Registry benchmark: the static pickle scan and the isolated loader against their floors.

    .venv/bin/python bench/registry_scan.py

Floors: ``joblib.load`` of the same bytes (the unsafe load the scan protects) and a bare
``pickletools.genops`` walk. Reports MB/s and ratios. Not a test; numbers depend on the machine.
"""

import io
import os
import pickletools
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
warnings.filterwarnings("ignore")


def best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from apps.registry.scan import scan_bytes

    X, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    buf = io.BytesIO()
    joblib.dump(model, buf)
    data = buf.getvalue()
    mb = len(data) / 1e6
    t_scan = best(lambda: scan_bytes(data))
    t_load = best(lambda: joblib.load(io.BytesIO(data)))
    import pickle

    pdata = pickle.dumps(model, protocol=5)
    t_scan_p = best(lambda: scan_bytes(pdata))
    t_genops = best(lambda: sum(1 for _ in pickletools.genops(pdata)))
    print(f"joblib RandomForest(100 trees): {mb:.1f} MB")
    print(f"  static scan      {t_scan * 1e3:8.1f} ms  ({mb / t_scan:7.1f} MB/s)")
    print(f"  joblib.load      {t_load * 1e3:8.1f} ms  (floor; scan/load = {t_scan / t_load:.2f}x)")
    print(f"pickle protocol 5: {len(pdata) / 1e6:.1f} MB")
    print(f"  static scan      {t_scan_p * 1e3:8.1f} ms")
    print(f"  bare genops walk {t_genops * 1e3:8.1f} ms  (floor; scan/genops = {t_scan_p / t_genops:.2f}x)")

    import django

    django.setup()
    from apps.registry.validation import run_sandbox

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.joblib")
        with open(path, "wb") as fh:
            fh.write(data)
        t = time.perf_counter()
        run_sandbox("joblib", path, tmp)
        first = time.perf_counter() - t
        t_sandbox = best(lambda: run_sandbox("joblib", path, tmp), repeat=3)

        def in_process():
            import skops.io as sio

            sio.dumps(joblib.load(path))

        t_inproc = best(in_process, repeat=3)
    print(f"isolated load + skops conversion: first {first:.2f} s (starts the forkserver), then "
          f"{t_sandbox * 1e3:.0f} ms vs {t_inproc * 1e3:.0f} ms in-process unsafe load+convert "
          f"({t_sandbox / t_inproc:.2f}x)")


if __name__ == "__main__":
    main()

"""The reference profile (pure: no Django)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd

from apps.registry.profile import build_reference_profile, quantile_grid


def test_profile_module_imports_no_django():
    code = "import apps.registry.profile, apps.registry.scan, apps.registry.sandbox, sys; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_profile_numeric_categorical_and_prediction():
    rng = np.random.default_rng(0)
    a = rng.normal(size=1000)
    a[:10] = np.nan
    df = pd.DataFrame({"a": a, "b": rng.choice(["x", "y", "z"], size=1000), "c": rng.integers(0, 2, 1000) == 1})
    proba = np.c_[1 - rng.random(1000), np.zeros(1000)]
    proba[:, 1] = 1 - proba[:, 0]
    prof = build_reference_profile(df, [{"name": "a", "type": "float"}, {"name": "b", "type": "str"},
                                        {"name": "c", "type": "bool"}], predictions=np.zeros(1000), probabilities=proba)
    json.dumps(prof)
    fa = prof["features"]["a"]
    assert prof["n_rows"] == 1000 and fa["kind"] == "numeric" and fa["n"] == 990
    assert abs(fa["missing_rate"] - 0.01) < 1e-9
    assert len(fa["quantiles"]) == 1001 == len(quantile_grid())
    assert np.allclose(fa["quantiles"], np.quantile(a[~np.isnan(a)], quantile_grid()))
    assert len(fa["histogram"]["edges"]) == 21 and sum(fa["histogram"]["counts"]) == 990
    assert prof["features"]["b"]["kind"] == "categorical" and sum(prof["features"]["b"]["frequencies"].values()) == 1000
    assert set(prof["features"]["c"]["frequencies"]) == {"True", "False"}
    assert prof["prediction"]["kind"] == "numeric" and len(prof["prediction"]["quantiles"]) == 1001


def test_profile_constant_and_all_missing_columns():
    df = pd.DataFrame({"k": [3.0] * 5, "m": [np.nan] * 5})
    prof = build_reference_profile(df, [{"name": "k", "type": "float"}, {"name": "m", "type": "int"}],
                                   predictions=np.array(["a", "b", "a", "a", "b"]))
    assert prof["features"]["k"]["histogram"] == {"edges": [3.0, 3.0], "counts": [5]}
    assert prof["features"]["m"]["missing_rate"] == 1.0 and prof["features"]["m"]["quantiles"] == []
    assert prof["prediction"] == {"kind": "categorical", "n": 5, "missing_rate": 0.0, "frequencies": {"a": 3, "b": 2}}


def test_datetime_feature_is_profiled_on_seconds_since_1970_utc():
    import pandas as pd

    from apps.registry.contract import epoch_seconds

    df = pd.DataFrame({"t": np.array(["2026-01-01T00:00:00", "NaT", "2026-01-02T00:00:00"], dtype="datetime64[ns]")})
    prof = build_reference_profile(df, [{"name": "t", "type": "datetime", "nullable": True}], sample_rows=0)
    entry = prof["features"]["t"]
    assert entry["kind"] == "numeric" and entry["type"] == "datetime" and entry["n"] == 2
    assert entry["min"] == 1767225600.0 and entry["max"] == 1767225600.0 + 86400
    # logged ISO 8601 text reads the same (no zone = UTC; offsets honoured; junk and null are missing)
    got = epoch_seconds(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01T01:00:00+01:00", None, "x"])
    assert got[:3].tolist() == [1767225600.0] * 3 and np.isnan(got[3:]).all()

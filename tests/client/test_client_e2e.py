"""The notebook client against a live portal (pytest-django's live server, real HTTP) and a real Celery
worker: from a fresh project to a live deployment, with a real data set that a package ships
(palmerpenguins) and with native XGBoost / LightGBM files."""

import numpy as np
import pytest
from slipway_client import Slipway, SlipwayError, ValidationRejected

from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# palmerpenguins' numeric measurements (+ the integer year); the test below adds the text columns island and
# sex (typed contracts serve string features).
PENGUIN_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]


@pytest.fixture
def serving_settings(settings, tmp_path):
    from apps.deployments import logpipe, serving

    settings.SERVING_SPOOL_DIR = tmp_path / "spool"
    settings.SERVING_DRAIN_IN_PROCESS = True
    settings.SERVING_DRAIN_INTERVAL = 0.3
    settings.SERVING_STATE_TTL = 0.2
    logpipe.flush_own_segment()
    logpipe._writer = None
    serving.CACHE.clear()
    serving.CACHE.clear_models()  # a test database reuses version ids: no predictor of an earlier test
    yield
    logpipe.flush_own_segment()
    logpipe._writer = None
    serving.CACHE.clear()


@pytest.fixture
def sw(live_server, make_user, celery_worker, serving_settings):
    """A client for a brand-new user (no project yet), with a personal API token."""
    from apps.projects.services import api_token_create

    user = make_user("penguin-scientist")
    return Slipway(live_server.url, token=api_token_create(user=user, name="notebook")[1], timeout=30)


@pytest.fixture(scope="module")
def penguins():
    from palmerpenguins import load_penguins
    from sklearn.model_selection import train_test_split

    df = load_penguins().dropna().reset_index(drop=True)
    train, holdout = train_test_split(df, test_size=0.3, random_state=0, stratify=df["species"])
    return train, holdout


def test_penguins_from_a_fresh_project_to_a_live_deployment(sw, penguins):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    train, holdout = penguins
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    model.fit(train[PENGUIN_FEATURES], train["species"])

    project = sw.ensure_project("penguins", name="Penguins")
    assert project["role"] == "owner"
    seen = []
    version = sw.register(model, holdout[PENGUIN_FEATURES], holdout["species"], project="penguins",
                          name="species", progress=lambda pct, msg: seen.append((pct, msg)), timeout=300,
                          tags=["penguins"], code_ref="notebook:penguins.ipynb")
    assert version.status == "ready" and version.version == 1 and version.artifact_format == "skops"
    assert version.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert version.metrics["accuracy"] > 0.9 and version.metrics["n"] == len(holdout)
    assert seen and seen[-1][0] == 100 and "ready" in seen[-1][1]
    # the contract the client read from the model and the frame (year is an integer column)
    contract = sw._request("GET", "/api/v1/projects/penguins/models/species")["input_contract"]
    assert [(c["name"], c["type"]) for c in contract] == [(n, "int" if n == "year" else "float")
                                                          for n in PENGUIN_FEATURES]

    # no unreviewed first release: without a promotion request only the owner's audited override puts it live
    with pytest.raises(SlipwayError) as refused:
        sw.deploy(version, slug="penguin-species")
    assert refused.value.status == 409 and "promotion request" in refused.value.detail
    dep = sw.deploy(version, slug="penguin-species", override_reason="notebook trial of the client")
    assert dep.status == "live" and dep.key.startswith("sdk_")
    answer = dep.predict(holdout[PENGUIN_FEATURES])
    got = [p["prediction"] for p in answer["predictions"]]
    assert got == list(model.predict(holdout[PENGUIN_FEATURES]))
    proba = np.array([[p["probabilities"][c] for c in version.classes] for p in answer["predictions"]])
    np.testing.assert_allclose(proba, model.predict_proba(holdout[PENGUIN_FEATURES]), atol=1e-3)

    # ground truth arrives later: joined on the request ids predict returned
    ids = [p["request_id"] for p in answer["predictions"]]
    wait_for(lambda: len(sw._request("GET", "/api/v1/projects/penguins/deployments/penguin-species/predictions",
                                     params={"limit": 500})) >= len(ids), timeout=30, message="logged predictions")
    result = sw.post_outcomes("penguin-species", list(zip(ids, holdout["species"], strict=True)))
    assert result["created"] == len(ids) and result["unknown_request_ids"] == []

    # a second version with a caller-chosen Idempotency-Key (retries inside one call reuse it: the unit
    # tests show a 503 retried with the same key and the same bytes)
    again = sw.register(model, holdout[PENGUIN_FEATURES], holdout["species"], project="penguins", name="species",
                        progress=False, idempotency_key="penguins-v2")
    assert again.version == 2 and again.status == "ready"


def test_native_xgboost_and_lightgbm_through_the_client(sw, penguins):
    import lightgbm as lgb
    import xgboost as xgb

    train, holdout = penguins
    features = PENGUIN_FEATURES[:4]
    sw.ensure_project("boosters")
    labels = {"Adelie": 0, "Chinstrap": 1, "Gentoo": 2}
    clf = xgb.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0)
    clf.fit(train[features], train["species"].map(labels))
    version = sw.register(clf, holdout[features], holdout["species"].map(labels), project="boosters",
                          name="species-xgb", progress=False, timeout=300)
    assert version.artifact_format == "xgboost" and version.metrics["accuracy"] > 0.9
    assert version.serving_format == "onnx" and version.validation_report["onnx"]["verified"]
    dep = sw.deploy(version, slug="species-xgb", override_reason="client test")
    got = [p["prediction"] for p in dep.predict(holdout[features])["predictions"]]
    assert np.mean(np.array(got) == clf.predict(holdout[features])) >= 0.99

    reg = lgb.LGBMRegressor(n_estimators=40, num_leaves=8, n_jobs=1, random_state=0, verbose=-1)
    reg_features = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
    reg.fit(train[reg_features], train["body_mass_g"])
    version = sw.register(reg, holdout[reg_features], holdout["body_mass_g"], project="boosters", name="mass-lgb",
                          progress=False, timeout=300)
    assert version.artifact_format == "lightgbm" and version.metrics["r2"] > 0.6
    dep = sw.deploy(version, slug="mass-lgb", override_reason="client test")
    got = np.array([p["prediction"] for p in dep.predict(holdout[reg_features])["predictions"]])
    np.testing.assert_allclose(got, reg.predict(holdout[reg_features]), rtol=1e-4)

    # the client reports the portal's rejection reason and its errors name the problem
    other_features = ["bill_length_mm", "bill_depth_mm", "body_mass_g"]
    other = lgb.LGBMRegressor(n_estimators=10, n_jobs=1, verbose=-1).fit(train[other_features],
                                                                          train["flipper_length_mm"])
    with pytest.raises(ValidationRejected, match="Input signature mismatch.*body_mass_g ≠ flipper_length_mm"):
        sw.register(other, holdout[other_features], holdout["flipper_length_mm"], project="boosters",
                    name="mass-lgb", progress=False, timeout=300)
    with pytest.raises(SlipwayError) as err:
        dep.predict([{"bill_length_mm": "long"}])
    assert err.value.status == 422


# palmerpenguins with its text columns (island, sex) next to the measurements: typed contracts (string
# features) serve them as they come from pandas.
PENGUIN_MIXED = ["island", "sex", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]


def test_penguins_with_text_columns_from_a_fresh_project_to_a_live_deployment(sw, penguins):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, holdout = penguins
    numbers = [c for c in PENGUIN_MIXED if c not in ("island", "sex")]
    model = Pipeline([
        ("prep", ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"]),
                                    ("num", StandardScaler(), numbers)])),
        ("clf", LogisticRegression(max_iter=1000)),
    ]).fit(train[PENGUIN_MIXED], train["species"])

    sw.ensure_project("penguins-mixed", name="Penguins (mixed types)")
    version = sw.register(model, holdout[PENGUIN_MIXED], holdout["species"], project="penguins-mixed",
                          name="species", progress=False, timeout=300)
    assert version.status == "ready" and version.metrics["accuracy"] > 0.9
    contract = sw._request("GET", "/api/v1/projects/penguins-mixed/models/species")["input_contract"]
    assert [(c["name"], c["type"]) for c in contract] == [
        ("island", "string"), ("sex", "string"), ("bill_length_mm", "float"), ("bill_depth_mm", "float"),
        ("flipper_length_mm", "float"), ("body_mass_g", "float"), ("year", "int")]

    dep = sw.deploy(version, slug="penguin-species-mixed", override_reason="client test")
    answer = dep.predict(holdout[PENGUIN_MIXED])
    assert [p["prediction"] for p in answer["predictions"]] == list(model.predict(holdout[PENGUIN_MIXED]))
    with pytest.raises(SlipwayError) as err:
        dep.predict([{**holdout[PENGUIN_MIXED].iloc[0].to_dict(), "island": 3}])
    assert err.value.status == 422 and "island" in err.value.detail

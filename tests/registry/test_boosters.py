"""Static checks of XGBoost/LightGBM native files (no database): content detection, and hostile files
that look like boosters — pickle inside, truncated, huge declared sizes — refused with the reason."""

import json
import pickle
import struct

import pytest

from apps.registry import boosters
from apps.registry.allowlist import BOOSTING_SKOPS_TYPES, is_allowed_global, skops_trusted_types
from apps.registry.boosters import BoosterRejected
from apps.registry.scan import ScanRejected, scan_bytes
from apps.registry.sniff import sniff_model_format
from tests.registry import factories as f


@pytest.fixture(scope="module")
def frame():
    return f.make_classification_frame(n=200)


@pytest.fixture(scope="module")
def xgb_model(frame):
    X, y, _ = frame
    return f.make_booster("xgboost", "classifier", X, y)


@pytest.fixture(scope="module")
def lgb_text(frame):
    X, y, _ = frame
    return f.native_bytes(f.make_booster("lightgbm", "classifier", X, y))


def _write(tmp_path, data: bytes, name="model.bin"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_formats_are_detected_from_the_content_not_the_name(xgb_model, lgb_text):
    assert sniff_model_format(f.native_bytes(xgb_model, "json")[:64]) == "xgboost"
    assert sniff_model_format(f.native_bytes(xgb_model, "ubjson")[:64]) == "xgboost"
    assert sniff_model_format(lgb_text[:64]) == "lightgbm"
    assert boosters.xgboost_encoding(f.native_bytes(xgb_model, "ubjson")[:64]) == "ubjson"


def test_valid_native_files_pass_the_static_checks(tmp_path, xgb_model, lgb_text):
    for enc in ("json", "ubjson"):
        info = boosters.read_xgboost(_write(tmp_path, f.native_bytes(xgb_model, enc)))
        assert (info.objective, info.n_classes, info.n_features, info.n_trees) == ("binary:logistic", 2, 4, 20)
        assert info.feature_names == ["f0", "f1", "f2", "f3"]
    info = boosters.read_lightgbm(_write(tmp_path, lgb_text))
    assert (info.objective, info.is_classifier, info.n_features, info.n_trees) == ("binary", True, 4, 20)


# --- pickle inside ------------------------------------------------------------------------------


def test_a_pickled_xgboost_model_named_json_is_sniffed_as_pickle_and_the_scan_refuses_it(xgb_model):
    data = pickle.dumps(xgb_model, protocol=4)
    assert sniff_model_format(data[:64]) == "pickle"
    with pytest.raises(ScanRejected, match=r"xgboost\.sklearn\.XGBClassifier, which is not on the allowlist"):
        scan_bytes(data)


def test_a_pickled_lightgbm_booster_is_refused_by_the_scan(frame):
    X, y, _ = frame
    model = f.make_booster("lightgbm", "classifier", X, y)
    with pytest.raises(ScanRejected, match=r"lightgbm\.sklearn\.LGBMClassifier, which is not on the allowlist"):
        scan_bytes(pickle.dumps(model))
    with pytest.raises(ScanRejected, match=r"lightgbm\.basic\.Booster"):
        scan_bytes(pickle.dumps(model.booster_))


def test_boosting_classes_are_trusted_by_exact_class_in_skops_only():
    trusted = [t for t in skops_trusted_types() if t.split(".")[0] in ("xgboost", "lightgbm")]
    assert sorted(trusted) == sorted(f"{m}.{n}" for m, n in BOOSTING_SKOPS_TYPES)
    assert not any(is_allowed_global(m, n) for m, n in BOOSTING_SKOPS_TYPES)
    assert not is_allowed_global("xgboost.core", "DMatrix") and "xgboost.core.DMatrix" not in skops_trusted_types()


def test_an_xgboost_json_header_followed_by_a_pickle_is_refused(tmp_path, xgb_model):
    data = b'{"learner": ' + pickle.dumps(xgb_model)
    assert sniff_model_format(data[:64]) == "xgboost"
    with pytest.raises(BoosterRejected, match="not valid JSON"):
        boosters.read_xgboost(_write(tmp_path, data))


def test_a_lightgbm_text_model_with_a_pickle_appended_is_refused(tmp_path, lgb_text, xgb_model):
    with pytest.raises(BoosterRejected, match="binary data"):
        boosters.read_lightgbm(_write(tmp_path, lgb_text + pickle.dumps(xgb_model)))


# --- truncated ----------------------------------------------------------------------------------


@pytest.mark.parametrize("enc", ["json", "ubjson"])
def test_truncated_xgboost_files_are_refused(tmp_path, xgb_model, enc):
    data = f.native_bytes(xgb_model, enc)
    with pytest.raises(BoosterRejected, match="not valid JSON|ends early|left in the file"):
        boosters.read_xgboost(_write(tmp_path, data[: len(data) // 2]))


def test_truncated_lightgbm_file_is_refused(tmp_path, lgb_text):
    with pytest.raises(BoosterRejected, match="truncated|entries for"):
        boosters.read_lightgbm(_write(tmp_path, lgb_text[: len(lgb_text) // 2]))
    with pytest.raises(BoosterRejected, match="lacks"):
        boosters.read_lightgbm(_write(tmp_path, b"tree\nversion=v4\nnum_class=1\n"))


# --- huge declared sizes --------------------------------------------------------------------------


def test_ubjson_with_a_huge_declared_array_is_refused_before_anything_is_allocated(tmp_path):
    key = b"L" + struct.pack(">q", 7) + b"learner"
    data = b"{" + key + b"[$d#L" + struct.pack(">q", 1 << 40) + b"\x00" * 16 + b"}"
    with pytest.raises(BoosterRejected, match=r"declares 4,398,046,511,104 bytes of data"):
        boosters.read_xgboost(_write(tmp_path, data))


def test_ubjson_with_a_huge_declared_string_is_refused(tmp_path):
    key = b"L" + struct.pack(">q", 7) + b"learner"
    data = b"{" + key + b"SL" + struct.pack(">q", 1 << 50) + b"abc}"
    with pytest.raises(BoosterRejected, match="declares 1,125,899,906,842,624 bytes"):
        boosters.read_xgboost(_write(tmp_path, data))


def _xgb_doc(xgb_model) -> dict:
    return json.loads(f.native_bytes(xgb_model, "json"))


def test_xgboost_json_declaring_a_billion_features_is_refused(tmp_path, xgb_model):
    doc = _xgb_doc(xgb_model)
    doc["learner"]["learner_model_param"]["num_feature"] = "1000000000"
    with pytest.raises(BoosterRejected, match="declares 1,000,000,000 features"):
        boosters.read_xgboost(_write(tmp_path, json.dumps(doc).encode()))


def test_xgboost_json_whose_tree_declares_more_nodes_than_it_holds_is_refused(tmp_path, xgb_model):
    doc = _xgb_doc(xgb_model)
    doc["learner"]["gradient_booster"]["model"]["trees"][3]["tree_param"]["num_nodes"] = "4000000"
    with pytest.raises(BoosterRejected, match="XGBoost tree 3: left_children has .* entries for 4,000,000"):
        boosters.read_xgboost(_write(tmp_path, json.dumps(doc).encode()))
    doc = _xgb_doc(xgb_model)
    doc["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] = "99999999"
    with pytest.raises(BoosterRejected, match="declares 99,999,999 trees but holds 20"):
        boosters.read_xgboost(_write(tmp_path, json.dumps(doc).encode()))


def _lgb_replace(text: bytes, key: bytes, value: bytes, count: int = 1) -> bytes:
    lines = text.split(b"\n")
    done = 0
    for i, line in enumerate(lines):
        if line.startswith(key + b"=") and done < count:
            lines[i] = key + b"=" + value
            done += 1
    assert done
    return b"\n".join(lines)


@pytest.mark.parametrize("key, value, needle", [
    (b"num_class", b"1000000000", "num_class=1,000,000,000"),
    (b"max_feature_idx", b"999999999", "max_feature_idx=999,999,999"),
    (b"num_leaves", b"1000000000", "num_leaves=1,000,000,000 in tree 0"),
    (b"tree_sizes", b"999999999999 1", "tree_sizes"),
    (b"split_feature", b"0 1 9999", "split_feature has 3 entries"),
])
def test_lightgbm_with_forged_counts_or_sizes_is_refused(tmp_path, lgb_text, key, value, needle):
    with pytest.raises(BoosterRejected, match=needle.replace("(", r"\(")):
        boosters.read_lightgbm(_write(tmp_path, _lgb_replace(lgb_text, key, value)))


def test_unsupported_objectives_are_refused_naming_them(tmp_path, lgb_text, xgb_model):
    with pytest.raises(BoosterRejected, match="objective 'lambdarank' is not served"):
        boosters.read_lightgbm(_write(tmp_path, _lgb_replace(lgb_text, b"objective", b"lambdarank")))
    doc = _xgb_doc(xgb_model)
    doc["learner"]["objective"]["name"] = "rank:pairwise"
    with pytest.raises(BoosterRejected, match="objective 'rank:pairwise' is not served"):
        boosters.read_xgboost(_write(tmp_path, json.dumps(doc).encode()))

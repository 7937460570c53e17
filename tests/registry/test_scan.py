"""The static pickle scanner and bounded decompression (no database, nothing is ever unpickled)."""

import io
import pickle

import pytest

from apps.registry.scan import InflateRefused, ScanRejected, detect_compression, inflate_to, scan_bytes
from tests.registry import factories as f
from tests.registry import malicious as bad


def _scan_maybe_compressed(data: bytes):
    kind = detect_compression(data[:16])
    if kind:
        out = io.BytesIO()
        inflate_to(io.BytesIO(data), out, kind=kind, input_size=len(data), max_bytes=1 << 30, max_ratio=1000)
        data = out.getvalue()
    return scan_bytes(data)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("make, offender", [
    (bad.os_system_pickle, "posix.system"),
    (bad.eval_pickle, "(builtins|__builtin__).eval"),
    (bad.subprocess_pickle, "(subprocess|commands).Popen"),
    (bad.pipeline_step_pickle, "posix.system"),
])
def test_scan_rejects_malicious_globals_naming_them(tmp_path, make, offender, protocol):
    marker = tmp_path / "pwned"
    with pytest.raises(ScanRejected, match=offender.replace(".", r"\.")):
        scan_bytes(make(marker, protocol=protocol))
    assert not marker.exists()


@pytest.mark.parametrize("compress", [3, ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)])
def test_scan_rejects_malicious_compressed_joblib(tmp_path, compress):
    marker = tmp_path / "pwned"
    with pytest.raises(ScanRejected, match=r"posix\.system"):
        _scan_maybe_compressed(bad.compressed_joblib(marker, compress=compress))
    assert not marker.exists()


def test_scan_resolves_stack_global_through_the_memo(tmp_path):
    with pytest.raises(ScanRejected, match=r"posix\.system"):
        scan_bytes(bad.memo_stack_global(tmp_path / "pwned"))


def test_scan_rejects_whole_module_tricks():
    # numpy.load would unpickle/read files: numpy is not trusted as a module, only exact names.
    with pytest.raises(ScanRejected, match=r"numpy\.load"):
        scan_bytes(b"\x80\x04\x8c\x05numpy\x8c\x04load\x93\x8c\x01x\x85R.")


@pytest.mark.parametrize("data, reason", [
    (b"", "not a readable pickle|no STOP|Truncated"),
    (b"\x80\x04\x8c\x05numpy", "readable|Truncated"),
    (b"\x80\x04N.garbage", "Trailing"),
    (b"\x80\x04Q.", "persistent"),
    (b"\x80\x05\x97.", "out-of-band"),
    (b"\x80\x04\x82\x01.", "extension"),
    (b"\x80\x04h\x05.", "memo"),
    (b"\x80\x04\x93.", "underflow"),
])
def test_scan_rejects_unparseable_or_odd_streams(data, reason):
    with pytest.raises(ScanRejected, match=reason):
        scan_bytes(data)


def test_scan_rejects_truncated_model_pickle():
    data = f.pickle_bytes(f.make_logreg())
    with pytest.raises(ScanRejected):
        scan_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_scan_accepts_benign_models(protocol):
    X, y, _ = f.make_classification_frame()
    for est in (f.make_logreg(X, y), f.make_hgb_pipeline(X, y), f.make_ridge()):
        result = scan_bytes(pickle.dumps(est, protocol=protocol))
        assert ("numpy", "ndarray") in result.globals or protocol >= 0


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)])
def test_scan_accepts_benign_joblib_and_skips_raw_array_bytes(compress):
    result = _scan_maybe_compressed(f.joblib_bytes(f.make_hgb_pipeline(), compress=compress))
    assert result.is_joblib and result.joblib_arrays > 0


def test_scan_rejects_joblib_array_larger_than_the_file():
    data = bytearray(f.joblib_bytes(f.make_logreg()))
    cut = bytes(data[: len(data) - 40])
    with pytest.raises(ScanRejected):
        scan_bytes(cut)


def test_inflate_refuses_a_decompression_bomb_without_expanding_it():
    bomb = bad.zlib_bomb(64 * 1024 * 1024)
    sink = io.BytesIO()
    with pytest.raises(InflateRefused, match="decompression bomb"):
        inflate_to(io.BytesIO(bomb), sink, kind="zlib", input_size=len(bomb), max_bytes=8 * 1024 * 1024,
                   max_ratio=200)
    assert sink.tell() <= 8 * 1024 * 1024


def test_inflate_refuses_truncated_stream():
    data = f.joblib_bytes(f.make_logreg(), compress=("gzip", 3))
    with pytest.raises(InflateRefused):
        inflate_to(io.BytesIO(data[:-30]), io.BytesIO(), kind="gzip", input_size=len(data), max_bytes=1 << 30,
                   max_ratio=1000)

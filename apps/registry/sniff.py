"""Content sniffing of uploaded files (pure: no Django). The bytes decide the format, never the name."""

from __future__ import annotations

import re
import zipfile

from .boosters import is_lightgbm_text, xgboost_encoding
from .scan import detect_compression

HEAD_BYTES = 64
_PROTO0_GLOBAL = re.compile(rb"^c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")


class SniffError(Exception):
    pass


def sniff_model_format(head: bytes) -> str:
    """'skops' | 'onnx' | 'xgboost' (JSON or UBJSON) | 'lightgbm' (text model) | 'joblib' (compressed) |
    'pickle' (joblib or plain pickle; the scan decides).

    Raises SniffError with a clear message for anything else.
    """
    if not head:
        raise SniffError("The file is empty")
    if head.startswith(b"PK\x03\x04"):
        return "skops"
    if xgboost_encoding(head):
        return "xgboost"
    if is_lightgbm_text(head):
        return "lightgbm"
    if detect_compression(head):
        return "joblib"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if _PROTO0_GLOBAL.match(head) or head[:2] in (b"(c", b"(i", b"(d", b"(l", b"}q", b"]q", b"(t"):
        return "pickle"
    if head[0] == 0x08 and len(head) > 2:  # protobuf field 1 (ir_version), varint: an ONNX ModelProto
        return "onnx"
    raise SniffError(
        "Not a recognised model file: upload a skops (.skops), ONNX (.onnx), joblib or pickle file of a "
        "scikit-learn estimator, an XGBoost model saved with save_model (.json or .ubj) or a LightGBM text "
        "model (booster.save_model, .txt); the format is detected from the content, not the file name")


def sniff_table_format(head: bytes) -> str:
    """'parquet' | 'csv' for holdout / training data files."""
    if not head:
        raise SniffError("The file is empty")
    if head.startswith(b"PAR1"):
        return "parquet"
    if b"\x00" in head:
        raise SniffError("Data files must be CSV (UTF-8 text) or Parquet")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end of the head is fine
            raise SniffError("Data files must be CSV (UTF-8 text) or Parquet") from exc
    return "csv"


def check_skops_zip(path, *, max_inflated: int, max_members: int = 10_000, max_ratio: float = 200.0) -> dict:
    """A skops file is a zip with ``schema.json``; refuse zip bombs before skops reads it."""
    import os

    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise SniffError(f"The skops archive has {len(infos):,} members (limit {max_members:,})")
            names = {i.filename for i in infos}
            if "schema.json" not in names:
                raise SniffError("The zip file is not a skops file (no schema.json)")
            inflated = sum(i.file_size for i in infos)
            limit = min(max_inflated, max(size * max_ratio, 1 << 20))
            if inflated > limit:
                raise SniffError(f"The skops archive expands to {inflated:,} bytes (limit {int(limit):,}): refused")
            for info in infos:
                if info.filename.startswith("/") or ".." in info.filename.split("/"):
                    raise SniffError(f"The skops archive has an unsafe member name {info.filename!r}")
    except zipfile.BadZipFile as exc:
        raise SniffError(f"The skops file is not a valid zip archive ({exc})") from exc
    return {"members": len(infos), "inflated_bytes": inflated}

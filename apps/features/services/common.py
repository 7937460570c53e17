"""Helpers every feature-store service shares: permission check, name rules, upload spooling and Parquet storage."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import polars as pl
from django.conf import settings

from apps.common.errors import InvalidInput, PermissionDenied
from apps.common.storage import artifact_store
from apps.common.tabular import csv_header
from apps.projects.models import Project
from apps.projects.permissions import can

from .. import pit, tabular
from ..models import DataSourceVersion

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
NAME_PATTERN = r"^\s*" + NAME_RE.pattern[1:-1] + r"\s*$"  # what _clean_name accepts (it strips), for the API schema
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,119}$")
COLUMN_PATTERN = r"^\s*" + COLUMN_RE.pattern[1:-1] + r"\s*$"


def _require(user, project: Project, action: str) -> None:
    if not can(user, project, action):
        raise PermissionDenied(f"Your role in {project.name} does not allow {action}")


def _clean_name(name: str, *, field: str = "name", what: str = "Name") -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise InvalidInput(f"{what} must be 1-80 lowercase letters, digits, '-' or '_' (got {name!r})", field=field)
    return name


def _clean_column(name: str, *, field: str) -> str:
    name = (name or "").strip()
    if not COLUMN_RE.match(name):
        raise InvalidInput(f"{name!r} is not a valid column name (letters, digits, '_')", field=field)
    return name


def _spool(upload, max_bytes: int) -> Path:
    """Copy an uploaded file (Django UploadedFile, file object or bytes) to a temp file, refusing oversize."""
    from apps.common.errors import PayloadTooLarge

    fd, name = tempfile.mkstemp(prefix="slipway-upload-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(upload, (bytes, bytearray)):
                chunks = [bytes(upload)]
            elif hasattr(upload, "chunks"):
                chunks = upload.chunks()
            else:
                chunks = iter(lambda: upload.read(1024 * 1024), b"")
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"File is larger than the limit of {max_bytes:,} bytes")
                out.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _read_upload(upload, filename: str, *, field: str, types: dict | None = None,
                 null_values=None) -> tuple[pl.DataFrame, str]:
    """Spool and parse an upload with the one parser (declared ``types``, per-upload ``null_values``)."""
    if upload is None:
        raise InvalidInput("Choose a file to upload", field=field)
    path = _spool(upload, settings.UPLOAD_MAX_BYTES)
    try:
        return _read_path(path, filename, field=field, types=types, null_values=null_values)
    finally:
        path.unlink(missing_ok=True)


def _read_path(path: Path, filename: str, *, field: str, types: dict | None = None,
               null_values=None) -> tuple[pl.DataFrame, str]:
    try:
        return tabular.read_table(path, filename=filename, types=types,
                                  null_values=tabular_null_values(null_values, field=field))
    except (tabular.TableError, pit.PitError) as exc:
        raise table_error(exc, field=field) from exc


def tabular_null_values(value, *, field: str = "null_values") -> list[str]:
    """Null tokens of one upload (JSON list, ``NA, null`` text or a list); only the empty cell by default."""
    from apps.common.tabular import parse_null_values

    try:
        return parse_null_values(value)
    except tabular.TableError as exc:
        raise InvalidInput(str(exc), field="null_values") from exc


def tabular_types(value) -> dict[str, str]:
    """Declared column types of one upload (JSON object, ``col:type, ...`` text or a dict)."""
    from apps.common.tabular import parse_types

    try:
        return parse_types(value)
    except tabular.TableError as exc:
        raise InvalidInput(str(exc), field="column_types") from exc


def table_error(exc: Exception, *, field: str) -> InvalidInput:
    """A parser error as a 422 naming the field, the column and the rows."""
    column = getattr(exc, "column", None)
    rows = getattr(exc, "rows", None) or []
    err = {"field": field, "message": str(exc)}
    if column:
        err["column"] = column
    if rows:
        err["rows"] = rows
    return InvalidInput(str(exc), errors=[err])


def _store_parquet(df: pl.DataFrame):
    fd, name = tempfile.mkstemp(prefix="slipway-parquet-", suffix=".parquet")
    os.close(fd)
    try:
        df.write_parquet(name, compression="zstd", statistics=True)
        return artifact_store().put_file(Path(name), suffix=".parquet")
    finally:
        Path(name).unlink(missing_ok=True)


def data_source_frame(*, version: DataSourceVersion, columns: list[str] | None = None) -> pl.DataFrame:
    """The version's rows; with ``columns`` only those of them the file has (Parquet is read column by column,
    so a join reads no column it does not use; a missing column is left for the join to report)."""
    path = artifact_store().path(version.artifact_key)
    if columns is not None:
        have = pl.read_parquet_schema(path)  # (the file's footer only)
        columns = [c for c in dict.fromkeys(columns) if c in have]
    return pl.read_parquet(path, columns=columns)


def upload_is_large(path: Path) -> bool:
    """Past ``FEATURES_UPLOAD_SYNC_MAX_BYTES`` or ``..._COLUMNS``: parsed by a background job, not the request."""
    if path.stat().st_size > settings.FEATURES_UPLOAD_SYNC_MAX_BYTES:
        return True
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"PAR1":
        import pyarrow.parquet as pq

        try:
            return len(pq.read_schema(path).names) > settings.FEATURES_UPLOAD_SYNC_MAX_COLUMNS
        except Exception:  # noqa: BLE001 - the parser names the problem synchronously
            return False
    try:
        header = csv_header(path)
    except tabular.TableError:
        return False
    return len(header) > settings.FEATURES_UPLOAD_SYNC_MAX_COLUMNS

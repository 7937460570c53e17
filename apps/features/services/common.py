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
from apps.projects.models import Project
from apps.projects.permissions import can

from .. import pit, tabular

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,119}$")


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


def _read_upload(upload, filename: str, *, field: str) -> tuple[pl.DataFrame, str]:
    if upload is None:
        raise InvalidInput("Choose a file to upload", field=field)
    path = _spool(upload, settings.UPLOAD_MAX_BYTES)
    try:
        return tabular.read_table(path, filename=filename)
    except (tabular.TableError, pit.PitError) as exc:
        raise InvalidInput(str(exc), field=field) from exc
    finally:
        path.unlink(missing_ok=True)


def _store_parquet(df: pl.DataFrame):
    fd, name = tempfile.mkstemp(prefix="slipway-parquet-", suffix=".parquet")
    os.close(fd)
    try:
        df.write_parquet(name, compression="zstd", statistics=True)
        return artifact_store().put_file(Path(name), suffix=".parquet")
    finally:
        Path(name).unlink(missing_ok=True)


"""A durable local spool of prediction records (pure: no Django).

Each serving process appends one JSON line per answered request to its own segment file
``<host>-<pid>-<n>.seg`` in the spool folder, with a single ``write(2)`` BEFORE the response is sent.
The writer holds an exclusive ``flock`` on its open segment. Guarantees:

- a process crash (kill -9, OOM) after the write loses nothing: the bytes are in the kernel;
- a machine crash loses at most the last ``fsync_interval`` seconds (``fsync="interval"``, the
  default: a background thread calls fdatasync) or nothing (``fsync="always"``: fdatasync before the
  response, ~0.5 ms per request on this disk).

``drain_once`` reads every segment from its recorded offset up to the last complete line, hands the
records to ``sink`` (which must be idempotent by record id), and only then advances the offset (a
sidecar ``.off`` file, atomically replaced) or, for a segment whose writer is gone (the flock can be
taken), deletes it. A sink failure leaves everything in place for the next attempt. One drainer per
folder at a time (``drain.lock``).
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

SEGMENT_SUFFIX = ".seg"


class SpoolWriter:
    def __init__(self, directory: str | os.PathLike, *, fsync: str = "interval", max_bytes: int = 32 * 1024 * 1024,
                 max_age: float = 300.0):
        self.directory = Path(directory)
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None
        self._size = 0
        self._opened = 0.0
        self._seq = 0
        self.dirty = False
        self.path: Path | None = None

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        if self._pid != pid:  # a fresh process (or a fork): never share the parent's segment
            self._fd, self._seq = None, 0
        self._pid = pid
        self._seq += 1
        name = f"{socket.gethostname()}-{pid}-{int(time.time() * 1000)}-{self._seq}"
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        fcntl.flock(fd, fcntl.LOCK_EX)
        final = self.directory / f"{name}{SEGMENT_SUFFIX}"
        os.rename(tmp, final)  # visible to drainers only once locked
        self._fd, self._size, self._opened, self.path = fd, 0, time.monotonic(), final

    def _close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.fdatasync(self._fd)
            finally:
                os.close(self._fd)  # releases the flock: drainers may now finish and delete it
        self._fd = None

    def append(self, line: bytes) -> None:
        """Durably append one record line (must end with a newline)."""
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                self._open()
            elif self._size >= self.max_bytes or time.monotonic() - self._opened > self.max_age:
                self._close()
                self._open()
            n = os.write(self._fd, line)
            if n != len(line):  # pragma: no cover - regular files do not short-write except on a full disk
                raise OSError("short write to the prediction spool")
            self._size += n
            if self.fsync == "always":
                os.fdatasync(self._fd)
            else:
                self.dirty = True

    def sync(self) -> None:
        with self._lock:
            if self.dirty and self._fd is not None and self._pid == os.getpid():
                os.fdatasync(self._fd)
                self.dirty = False

    def close(self) -> None:
        with self._lock:
            self._close()


def _read_offset(seg: Path) -> int:
    try:
        return int((seg.with_suffix(".off")).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_offset(seg: Path, offset: int) -> None:
    off = seg.with_suffix(".off")
    tmp = seg.with_suffix(".off.tmp")
    tmp.write_text(str(offset))
    os.replace(tmp, off)


def backlog(directory: str | os.PathLike) -> tuple[int, int]:
    """(segments, bytes not yet drained) in the spool folder."""
    directory = Path(directory)
    segments, pending = 0, 0
    try:
        entries = list(directory.glob(f"*{SEGMENT_SUFFIX}"))
    except FileNotFoundError:
        return 0, 0
    for seg in entries:
        try:
            size = seg.stat().st_size
        except FileNotFoundError:
            continue
        left = max(0, size - _read_offset(seg))
        segments += 1 if left else 0
        pending += left
    return segments, pending


def oldest_pending(directory: str | os.PathLike) -> float | None:
    """The request time ``t`` of the oldest record not yet drained (the first complete undrained line of
    each segment; segments are appended in request order), or None when nothing is pending. Monitoring
    closes windows only before it: a record still here will land in the log with this time."""
    import json

    oldest = None
    try:
        entries = list(Path(directory).glob(f"*{SEGMENT_SUFFIX}"))
    except FileNotFoundError:
        return None
    for seg in entries:
        try:
            with open(seg, "rb") as fh:
                fh.seek(_read_offset(seg))
                line = fh.readline()
        except FileNotFoundError:
            continue
        if not line.endswith(b"\n"):
            continue
        try:
            t = float(json.loads(line)["t"])
        except (ValueError, KeyError, TypeError):
            continue
        oldest = t if oldest is None or t < oldest else oldest
    return oldest


def drain_once(directory: str | os.PathLike, sink: Callable[[list[bytes]], None], *, batch_lines: int = 5000,
               max_batches: int = 1000) -> int:
    """Hand every undrained record to ``sink`` (in batches); return the number of records handed over.

    Returns -1 when another drainer holds the folder lock.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(directory / "drain.lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return -1
        total = 0
        batches = 0
        for seg in sorted(directory.glob(f"*{SEGMENT_SUFFIX}"), key=lambda p: p.stat().st_mtime
                          if p.exists() else 0):
            try:
                fd = os.open(seg, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    finished = True  # its writer closed it or died: drain it to the end, then delete
                except BlockingIOError:
                    finished = False
                offset = _read_offset(seg)
                while batches < max_batches:
                    os.lseek(fd, offset, os.SEEK_SET)
                    chunk = _read_lines(fd, batch_lines)
                    if not chunk:
                        break
                    lines, consumed = chunk
                    if lines:
                        sink(lines)
                        total += len(lines)
                    offset += consumed
                    _write_offset(seg, offset)
                    batches += 1
                if finished and batches < max_batches:
                    seg.unlink(missing_ok=True)
                    seg.with_suffix(".off").unlink(missing_ok=True)
            finally:
                os.close(fd)
        return total
    finally:
        os.close(lock_fd)


def _read_lines(fd: int, max_lines: int) -> tuple[list[bytes], int] | None:
    """Up to ``max_lines`` complete lines from the current position; a partial last line is left."""
    lines: list[bytes] = []
    consumed = 0
    pending = b""
    while len(lines) < max_lines:
        data = os.read(fd, 1024 * 1024)
        if not data:
            break
        parts = (pending + data).split(b"\n")
        pending = parts.pop()  # no newline yet: incomplete (or being written)
        for part in parts:
            if len(lines) >= max_lines:
                break
            consumed += len(part) + 1
            if part.strip():
                lines.append(part)
    if not lines and consumed == 0:
        return None
    return lines, consumed

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from apps.common import flusher

_ts_second: list = [None, ""]  # the last whole second formatted, and its text without the fraction


def iso_utc(ts: float) -> str:
    """``datetime.fromtimestamp(ts, UTC).isoformat()`` (same text, same half-even rounding to the
    microsecond), at a third of its cost: the date and time of day are formatted once per second."""
    frac, sec = math.modf(ts)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        sec += 1
        us -= 1_000_000
    if frac < 0 or sec < 0:  # before 1970: not on any hot path
        return datetime.fromtimestamp(ts, UTC).isoformat()
    whole = int(sec)
    cached = _ts_second
    if cached[0] != whole:
        cached[1] = datetime.fromtimestamp(whole, UTC).isoformat()[:-6]  # without "+00:00"
        cached[0] = whole
    return f"{cached[1]}.{us:06d}+00:00" if us else f"{cached[1]}+00:00"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields (request_id, deployment, ...) are kept.

    Serving writes one access line per prediction, so this is on the hot path: orjson, compact."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
    _scalar = (str, int, float, bool, type(None))

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        skip, scalar = self._skip, self._scalar
        for key, value in record.__dict__.items():
            if key not in skip and key[0] != "_":
                data[key] = value if isinstance(value, scalar) else str(value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return self._dumps(data)

    @staticmethod
    def _dumps(data: dict) -> str:
        try:
            return orjson.dumps(data).decode()
        except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
            return json.dumps(data)

    def format_fields(self, created: float, levelname: str, name: str, msg: str, extra: dict) -> str:
        """``format`` of a record with these fields and ``extra`` (no arguments, no exception), without the
        record (``HotPathLog``)."""
        data = {"ts": iso_utc(created), "level": levelname, "logger": name, "msg": msg}
        scalar = self._scalar
        for key, value in extra.items():
            if key[0] != "_":
                data[key] = value if isinstance(value, scalar) else str(value)
        return self._dumps(data)


class HotPathLog:
    """``log(level, msg, extra)`` for one call site on a hot path (serving's access line): the effect of
    ``logger.log(level, msg, extra=extra)`` at a fraction of its cost.

    In the configured case — the record would reach exactly one handler, a ``StreamHandler`` with the
    ``JsonFormatter``, and no logger or handler on the way has a filter — the line is formatted from the fields
    and written to that handler's stream under its lock: the same text ``logger.log`` writes, without building
    a ``LogRecord``. Otherwise (other or more handlers, e.g. pytest's ``caplog``; filters; a custom record
    factory) a ``LogRecord`` is built — its constant fields computed once per process, no stack walk for the
    caller — and handed to ``logger.handle``, so levels, filters, handlers and formatters all apply as usual.
    A failing handler raises here (the caller counts it) instead of printing a traceback.
    """

    def __init__(self, logger: logging.Logger, *, pathname: str, func: str,
                 batch_interval: Callable[[], float] | None = None, on_flush_error: Callable[[], None] | None = None):
        """``batch_interval``: seconds between writes of batched lines (read on every call; 0 or None: every
        line is written at once). Batched, the fast path's lines below WARNING are kept in memory and written
        together by the observability flusher (``apps.common.flusher``: every interval, and on ``flush``); a line
        at WARNING or above writes the batch first, then itself, so the order is kept."""
        self.logger = logger
        self._pathname = pathname
        self._func = func
        self._pid: int | None = None
        self._base: dict = {}
        self._batch_interval = batch_interval
        self._on_flush_error = on_flush_error
        self._buf: list[tuple] = []  # (created, level name, message, extra) of each batched line
        self._buf_handler: logging.StreamHandler | None = None
        self._buf_lock = threading.Lock()
        if batch_interval is not None:
            flusher.register(self.flush)
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._buf, self._buf_handler, self._buf_lock = [], None, threading.Lock()

    def flush(self) -> None:
        """Write the batched lines (a failure is reported to ``on_flush_error`` and the lines are dropped)."""
        with self._buf_lock:
            buf, handler = self._buf, self._buf_handler
            self._buf = []
        if not buf or handler is None:
            return
        try:
            fmt, name, end = handler.formatter.format_fields, self.logger.name, handler.terminator
            text = "".join([fmt(created, levelname, name, msg, extra) + end for created, levelname, msg, extra in buf])
            with handler.lock:
                handler.stream.write(text)
                handler.flush()
        except Exception:
            if self._on_flush_error is None:
                raise
            self._on_flush_error()

    def _constant_fields(self) -> dict:
        template = logging.LogRecord(self.logger.name, logging.INFO, self._pathname, 0, "", None, None, self._func)
        return dict(template.__dict__)  # every field in LogRecord's order; the per-record ones are overwritten

    def _only_handler(self, level: int) -> logging.StreamHandler | None:
        """The single plain JSON stream handler this record would reach, or None (see the class docstring)."""
        found = None
        c = self.logger
        while c is not None:
            if c.filters:
                return None
            for h in c.handlers:
                if found is not None or type(h) is not logging.StreamHandler or h.filters or \
                        type(h.formatter) is not JsonFormatter:
                    return None
                found = h
            if not c.propagate:
                break
            c = c.parent
        if found is None or level < found.level:
            return None
        return found

    def log(self, level: int, msg: str, extra: dict) -> None:
        logger = self.logger
        if not logger.isEnabledFor(level) or logger.disabled:
            return
        customised = logging.getLogRecordFactory() is not logging.LogRecord or \
            type(logger).makeRecord is not logging.Logger.makeRecord or "message" in extra or "asctime" in extra
        if not customised and extra.keys().isdisjoint(JsonFormatter._skip):
            handler = self._only_handler(level)
            if handler is not None:
                interval = self._batch_interval() if self._batch_interval is not None else 0
                if interval > 0 and level < logging.WARNING:
                    # batched: the fields are kept (the caller's ``extra`` is never changed after the call) and the
                    # line is formatted at the flush, with the others
                    flusher.ensure_running(interval)
                    item = (time.time(), logging.getLevelName(level), str(msg), extra)
                    if self._buf and self._buf_handler is not handler:
                        self.flush()  # logging was reconfigured: the old batch goes where it was bound
                    with self._buf_lock:
                        self._buf_handler = handler
                        self._buf.append(item)
                    return
                line = handler.formatter.format_fields(time.time(), logging.getLevelName(level), logger.name,
                                                       str(msg), extra)
                if self._buf:
                    self.flush()  # batched lines first: the order is kept
                with handler.lock:
                    handler.stream.write(line + handler.terminator)
                    handler.flush()
                return
        pid = os.getpid()
        if customised or pid != self._pid:
            if customised:  # a record factory, a Logger subclass or a reserved name: the standard path
                logger.log(level, msg, extra=extra)  # raises the standard KeyError for a reserved name
                return
            self._base, self._pid = self._constant_fields(), pid  # first use, or a forked worker
        fields = self._base.copy()
        if not fields.keys().isdisjoint(extra):
            logger.log(level, msg, extra=extra)
            return
        ct = time.time()
        fields["msg"] = msg
        fields["levelname"] = logging.getLevelName(level)
        fields["levelno"] = level
        fields["created"] = ct
        fields["msecs"] = int((ct - int(ct)) * 1000) + 0.0
        fields["relativeCreated"] = (ct - logging._startTime) * 1000
        if logging.logThreads:
            fields["thread"] = threading.get_ident()
            fields["threadName"] = threading.current_thread().name
        fields.update(extra)
        record = _new_record(logging.LogRecord)
        record.__dict__ = fields
        logger.handle(record)


_new_record = object.__new__

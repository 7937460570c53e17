"""The JSON log formatter and the hot-path logger (serving's access line): same text as the standard path."""

import io
import logging
import math
import random
from datetime import UTC, datetime

import orjson
import pytest

from apps.common.logging import HotPathLog, JsonFormatter, iso_utc


def test_iso_utc_is_datetime_isoformat_to_the_microsecond():
    rng = random.Random(7)
    stamps = [0.0, 1.0, 1e9, 1796507482.0, 1796507482.5, 1796507482.9999995, 1796507482.0000005,
              1796507482.9999994999, 1796507482.0000015, 1796507482.999999]
    for _ in range(50_000):
        t = rng.uniform(0, 4e9)
        stamps += [t, math.floor(t) + rng.choice([0.9999995, 0.0000005, 0.5e-6, 1.5e-6, 0.999999, 0.9999999])]
    for t in stamps:
        assert iso_utc(t) == datetime.fromtimestamp(t, UTC).isoformat(), repr(t)
    assert iso_utc(-1.25) == datetime.fromtimestamp(-1.25, UTC).isoformat()


def _logger(name: str, *, formatter=None, filters=()) -> tuple[logging.Logger, io.StringIO]:
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.filters.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter or JsonFormatter())
    for f in filters:
        handler.addFilter(f)
    logger.addHandler(handler)
    return logger, stream


EXTRA = {"request_id": "86709aeb-50ca-0e29-002f-356f0001d4bc", "deployment": "bench-01", "version_id": 7,
         "rows": 1, "status": 200, "latency_ms": 0.153, "obj": [1, 2], "_private": 1}


def _lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(x) for x in stream.getvalue().splitlines()]


@pytest.mark.parametrize("level", [logging.INFO, logging.ERROR])
def test_hot_path_writes_the_same_line_as_logger_log(level):
    logger, stream = _logger("slipway.test.hot")
    hot = HotPathLog(logger, pathname=__file__, func="predict")
    hot.log(level, "predict", EXTRA)
    logger.log(level, "predict", extra=EXTRA)
    fast, standard = _lines(stream)
    assert fast.pop("ts")[:4] == standard.pop("ts")[:4]
    assert fast == standard
    assert list(fast) == ["level", "logger", "msg", "request_id", "deployment", "version_id", "rows", "status",
                          "latency_ms", "obj"]
    assert fast["obj"] == "[1, 2]"  # non-scalars as text, like the formatter


def test_hot_path_respects_levels_and_disabled_loggers():
    logger, stream = _logger("slipway.test.levels")
    hot = HotPathLog(logger, pathname=__file__, func="predict")
    logger.setLevel(logging.WARNING)
    hot.log(logging.INFO, "predict", EXTRA)
    assert stream.getvalue() == ""
    logger.setLevel(logging.INFO)
    logger.handlers[0].setLevel(logging.ERROR)
    hot.log(logging.INFO, "predict", EXTRA)
    assert stream.getvalue() == ""
    logger.disabled = True
    hot.log(logging.ERROR, "predict", EXTRA)
    assert stream.getvalue() == ""
    logger.disabled = False
    hot.log(logging.ERROR, "predict", EXTRA)
    assert len(_lines(stream)) == 1


def test_filters_and_other_handlers_get_an_ordinary_record():
    seen = []

    def keep(record):
        seen.append(record)
        return record.status == 200

    logger, stream = _logger("slipway.test.filtered", filters=[keep])
    hot = HotPathLog(logger, pathname=__file__, func="predict")
    hot.log(logging.INFO, "predict", EXTRA)
    hot.log(logging.INFO, "refused", {**EXTRA, "status": 401})
    assert [x["msg"] for x in _lines(stream)] == ["predict"]
    record = seen[0]
    assert isinstance(record, logging.LogRecord)
    assert (record.name, record.levelname, record.getMessage(), record.funcName, record.filename) == (
        "slipway.test.filtered", "INFO", "predict", "predict", "test_logging.py")
    assert record.request_id == EXTRA["request_id"] and record.thread is not None and record.process
    # A plain text formatter on the handler: the record path, with every standard field usable.
    logger2, stream2 = _logger("slipway.test.text", formatter=logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(module)s %(funcName)s %(process)d %(threadName)s %(message)s "
        "%(deployment)s"))
    HotPathLog(logger2, pathname=__file__, func="predict").log(logging.INFO, "predict", EXTRA)
    assert stream2.getvalue().split()[2:] == ["INFO", "slipway.test.text", "test_logging", "predict",
                                               str(record.process), record.threadName, "predict", "bench-01"]


def test_reserved_extra_names_raise_like_the_standard_path():
    logger, _ = _logger("slipway.test.reserved")
    hot = HotPathLog(logger, pathname=__file__, func="predict")
    for name in ("message", "levelname", "msg"):
        with pytest.raises(KeyError):
            hot.log(logging.INFO, "predict", {name: "x"})


def test_a_failing_stream_raises_to_the_caller():
    class Broken(io.StringIO):
        def write(self, s):
            raise OSError("disk full")

    logger, _ = _logger("slipway.test.broken")
    logger.handlers[0].setStream(Broken())
    with pytest.raises(OSError):
        HotPathLog(logger, pathname=__file__, func="predict").log(logging.INFO, "predict", EXTRA)


def test_batched_lines_are_the_same_text_written_at_the_flush_in_order():
    logger, stream = _logger("slipway.test.batched")
    errors = []
    hot = HotPathLog(logger, pathname=__file__, func="predict", batch_interval=lambda: 3600.0,
                     on_flush_error=lambda: errors.append(1))
    plain = HotPathLog(logger, pathname=__file__, func="predict")
    hot.log(logging.INFO, "first", EXTRA)
    hot.log(logging.INFO, "second", {**EXTRA, "status": 422})
    assert stream.getvalue() == ""  # kept in memory until the flush (the flusher thread's interval: an hour here)
    hot.log(logging.ERROR, "third", EXTRA)  # WARNING and above: the batch first, then the line, at once
    assert [x["msg"] for x in _lines(stream)] == ["first", "second", "third"]
    hot.log(logging.INFO, "fourth", EXTRA)
    plain.log(logging.INFO, "fourth", EXTRA)  # the unbatched line for comparison
    hot.flush()
    batched, standard = _lines(stream)[3], _lines(stream)[4]
    assert batched.pop("ts")[:4] == standard.pop("ts")[:4]
    assert batched == standard
    # A failing stream at the flush is reported, never raised into the flusher or a request.
    hot.log(logging.INFO, "lost", EXTRA)

    class Broken(io.StringIO):
        def write(self, s):
            raise OSError("disk full")

    logger.handlers[0].setStream(Broken())
    hot.flush()
    assert errors == [1]


def test_batching_off_writes_each_line_at_once():
    logger, stream = _logger("slipway.test.unbatched")
    hot = HotPathLog(logger, pathname=__file__, func="predict", batch_interval=lambda: 0.0)
    hot.log(logging.INFO, "now", EXTRA)
    assert [x["msg"] for x in _lines(stream)] == ["now"]

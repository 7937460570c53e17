import json
import logging
from datetime import UTC, datetime

import orjson


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields (request_id, deployment, ...) are kept.

    Serving writes one access line per prediction, so this is on the hot path: orjson, compact."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
    _scalar = (str, int, float, bool, type(None))

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
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
        try:
            return orjson.dumps(data).decode()
        except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
            return json.dumps(data)

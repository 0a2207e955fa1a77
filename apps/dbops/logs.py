"""dbops' structured log events, written as JSON by python-json-logger's formatter.

An event is one call, `log_event(logger, level, "breaker_transition", old="closed", new="open")`: the record's
message is the event name and its fields as `key=value` (readable under any formatter), and the fields travel as
record attributes, which `JSON_FORMATTER` writes as JSON keys. One valid JSON object per line whatever a value
holds (quotes, newlines, `relation "x" does not exist`), which hand-built JSON templates could not promise.

In LOGGING: `"formatters": {"json": {"()": "dbops.logs.JsonFormatter"}}` on the handler of the `dbops` logger.
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# LogRecord's own attributes: a field of that name would overwrite them (logging refuses "message" and "asctime").
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(_JsonFormatter):
    """python-json-logger's formatter with dbops' fields: time, level, logger, message, then the event's own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", FIELDS)
        super().__init__(*args, **kwargs)


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event` with its fields as separate JSON keys (a reserved name gets the prefix `event_`)."""
    extra = {"event": event, **{(f"event_{key}" if key in _RESERVED else key): value for key, value in fields.items()}}
    text = " ".join([event, *(f"{key}={value}" for key, value in fields.items())])
    logger.log(level, "%s", text, extra=extra)

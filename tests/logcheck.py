"""Every line dbops logs during the suite must be one JSON object: checked on each test's own records."""

from __future__ import annotations

import json
import logging


class JsonLinesCheck(logging.Handler):
    """Format each `dbops` record as the project's LOGGING does and keep the lines that are not one JSON object."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(level=logging.DEBUG)
        configured = [handler.formatter for handler in logger.handlers if handler.formatter is not None]
        assert configured, "LOGGING gives the dbops logger no formatted handler"
        self.setFormatter(configured[0])  # what the reference project really writes, not a formatter of our choice
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        try:
            valid = isinstance(json.loads(line), dict) and "\n" not in line
        except ValueError:
            valid = False
        if not valid:
            self.bad.append(line)

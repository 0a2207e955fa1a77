"""A logging filter for messages that repeat by the hundred during an outage (psycopg_pool's reconnect warnings)."""

from __future__ import annotations

import logging
import threading
import time


class RepeatedMessageFilter(logging.Filter):
    """Pass the first record of each message per `interval` seconds; the next one passed says how many were held.

    Use it in LOGGING (`"()": "dbops.monitoring.log_filters.RepeatedMessageFilter"`) on a logger such as
    `psycopg.pool`, which warns once per failed reconnection attempt of every pooled connection.
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = float(interval)
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            passed_at, held = self._seen.get(key, (float("-inf"), 0))
            if now - passed_at < self.interval:
                self._seen[key] = (passed_at, held + 1)
                return False
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.interval:.0f} s not shown)"
        return True

"""A worker's pool comes back as soon as the server does, whether or not the circuit breaker ever opened.

While the server is down, psycopg_pool keeps retrying the connections it lost with a growing backoff (7-11 s
per attempt measured here, more later): left alone, requests wait out that backoff long after the server is back.
Each pool's connections are made through a connection class that records, in this process, whether its last
attempt to connect failed (`PoolEvidence`). While it has, the next checkout first asks the server directly (at
most every `PROBE_INTERVAL` seconds per process); when the server answers, the pool is replaced by a fresh one
that connects at once. Each worker acts on its own evidence: a probe answered in worker A says nothing about
worker B's pool. The connection budget holds: a pool is replaced only while none of its connections is checked
out (the old pool is closed before the new one connects), so old and new never count together at the server.
"""

from __future__ import annotations

import enum
import threading
import time
from typing import Any

import psycopg

from dbops.database.pool import direct_connection, replace_idle_pool

# How often a worker whose pool failed to connect may ask the server directly whether it is back.
PROBE_INTERVAL = 0.25
# A direct probe must answer quickly: a request is waiting on it.
PROBE_TIMEOUT = 2


class PoolHealth(enum.Enum):
    HEALTHY = "healthy"  # the pool's last connection attempt succeeded (or none failed): nothing to do
    REVIVED = "revived"  # it had failed, the server answers now, and the pool was replaced
    BUSY = "busy"  # it had failed, the server answers, but requests still hold connections: not replaced yet
    DOWN = "down"  # it had failed and the server did not answer (or was asked moments ago)


class PoolEvidence:
    """What this process saw of one alias' pool connecting: when its last attempt failed (None: it did not)."""

    def __init__(self) -> None:
        self.failed_at: float | None = None
        self.probed_at = float("-inf")
        self.last_probe_answered = False
        self.lock = threading.Lock()

    def connected(self) -> None:
        self.failed_at = None

    def failed(self) -> None:
        if self.failed_at is None:
            self.failed_at = time.monotonic()


_evidence: dict[str, PoolEvidence] = {}
_evidence_lock = threading.Lock()
_connection_classes: dict[str, type[psycopg.Connection]] = {}


def evidence(alias: str) -> PoolEvidence:
    found = _evidence.get(alias)
    if found is None:
        with _evidence_lock:
            found = _evidence.setdefault(alias, PoolEvidence())
    return found


def connection_class(alias: str) -> type[psycopg.Connection]:
    """Return the psycopg connection class `alias`' pool connects with: it records each attempt's outcome."""
    found = _connection_classes.get(alias)
    if found is not None:
        return found
    seen = evidence(alias)

    class RecordingConnection(psycopg.Connection):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any):
            try:
                conn = super().connect(conninfo, **kwargs)
            except Exception:
                seen.failed()
                raise
            seen.connected()
            return conn

    RecordingConnection.__name__ = RecordingConnection.__qualname__ = f"RecordingConnection[{alias}]"
    return _connection_classes.setdefault(alias, RecordingConnection)


def revive(alias: str) -> PoolHealth:
    """Replace `alias`' pool when its connections failed and the server answers now; say which case this was.

    Cheap when nothing failed (one attribute read): it runs before every checkout.
    """
    seen = evidence(alias)
    if seen.failed_at is None:
        return PoolHealth.HEALTHY
    with seen.lock:
        if seen.failed_at is None:
            return PoolHealth.HEALTHY
        now = time.monotonic()
        if now - seen.probed_at >= PROBE_INTERVAL:
            seen.probed_at = now
            seen.last_probe_answered = _server_answers(alias)
        if not seen.last_probe_answered:
            return PoolHealth.DOWN
        if not replace_idle_pool(alias):
            return PoolHealth.BUSY  # their requests end soon (dead connections fail fast), then it is replaced
        seen.connected()
    return PoolHealth.REVIVED


def _server_answers(alias: str) -> bool:
    try:
        with direct_connection(alias, timeout=PROBE_TIMEOUT) as conn:
            conn.execute("SELECT 1")
    except Exception:
        return False
    return True

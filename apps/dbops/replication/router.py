"""Read replica routing: reads go to the replica while its replay lag is under DATABASE_REPLICA_MAX_LAG_MS.

Reads stay on the primary inside a transaction on the primary and after a write in the same request
(read-your-writes; `ReplicaRoutingMiddleware` scopes that to one request), however the write was made: the ORM
(`db_for_write`) or SQL through `connection.cursor()` (`WriteMarker`, an execute wrapper on the primary's
connection: any statement that is not a SELECT, SHOW, SET or EXPLAIN counts as a write). The lag is measured on
the replica itself (time since the last replayed transaction while WAL is waiting to be replayed), at most once a
second per process; an unreachable replica counts as too far behind. Decisions and lag are Prometheus metrics.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import time
from typing import Any

from django.db import connections
from prometheus_client import Counter, Gauge

from dbops.conf import get_config
from dbops.database.pool import probe_connection
from dbops.database.rows import one_row
from dbops.database.wrappers import attach_once

REPLICA = "replica"
LAG_TTL = 1.0
LAG_SQL = """
SELECT CASE
  WHEN NOT pg_is_in_recovery() THEN NULL
  WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
  -- Behind, with nothing replayed since it started: lag unknown, so treat it as too far behind.
  ELSE coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000, 'Infinity')
END
"""

REPLICA_LAG = Gauge(
    "dbops_replica_lag_seconds", "Replay lag of the read replica (-1: unreachable).", multiprocess_mode="mostrecent"
)
READ_ROUTING = Counter("dbops_read_routing", "Where reads were routed, and why.", ["to", "reason"])

_wrote: contextvars.ContextVar[bool] = contextvars.ContextVar("dbops_wrote", default=False)
_lag_lock = threading.Lock()
_lag_cache: dict[str, Any] = {"value": None, "at": float("-inf")}


def replica_configured() -> bool:
    return get_config().replica is not None


def replica_lag_ms(*, force: bool = False) -> float | None:
    """Return the replica's replay lag in ms (None when unreachable or not a standby), cached for a second."""
    now = time.monotonic()
    if not force and now - _lag_cache["at"] < LAG_TTL:
        return _lag_cache["value"]
    with _lag_lock:
        if not force and now - _lag_cache["at"] < LAG_TTL:
            return _lag_cache["value"]
        try:
            with probe_connection(REPLICA, float(get_config().health.probe_timeout)) as conn:
                value = one_row(conn.execute(LAG_SQL))[0]
            lag = None if value is None else float(value)
        except Exception:
            lag = None
        _lag_cache.update(value=lag, at=time.monotonic())
        REPLICA_LAG.set(-1 if lag is None else lag / 1000)
        return lag


def read_alias() -> tuple[str, str]:
    """Return (alias, reason) for the next read."""
    if _wrote.get():
        return "default", "read_your_writes"
    if connections["default"].in_atomic_block:
        return "default", "transaction"
    lag = replica_lag_ms()
    if lag is None:
        return "default", "replica_unavailable"
    if lag > get_config().replica_max_lag_ms:
        return "default", "replica_lagging"
    return REPLICA, "fresh"


@functools.cache
def _routing_counter(alias: str, reason: str):
    """Return the counter child once per (alias, reason): label lookups are the costly part on a per-read path."""
    return READ_ROUTING.labels(alias, reason)


class ReplicaRouter:
    """Django database router: reads to the fresh replica, everything else to the primary."""

    def db_for_read(self, model, **hints):
        if not replica_configured():
            return None
        alias, reason = read_alias()
        _routing_counter(alias, reason).inc()
        return alias

    def db_for_write(self, model, **hints):
        _wrote.set(True)
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the replica holds the same data

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db != REPLICA


# First words of statements that change nothing (a SELECT calling a function that writes is the exception).
_READ_ONLY_STARTS = ("SELECT", "SHOW", "SET", "RESET", "EXPLAIN", "VALUES", "FETCH", "DECLARE", "CLOSE")


class WriteMarker:
    """Execute wrapper on the primary: a statement that may write keeps the request's later reads there."""

    def __call__(self, execute, sql, params, many, context):
        if not _wrote.get() and not str(sql).lstrip(" (\n\t")[:8].upper().startswith(_READ_ONLY_STARTS):
            _wrote.set(True)
        return execute(sql, params, many, context)


def attach_write_marker(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: give the primary's DatabaseWrapper one marker (kept across checkouts)."""
    if connection.alias == "default":
        attach_once(connection, "dbops_write_marker", WriteMarker)


def start_request() -> contextvars.Token:
    """Begin a request: no write seen yet. Returns the token `end_request` needs."""
    return _wrote.set(False)


def end_request(token: contextvars.Token) -> None:
    _wrote.reset(token)

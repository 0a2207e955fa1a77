"""A client-side bound on every statement a request runs, for a server that stops answering altogether.

`statement_timeout` is the server's own bound. A server that is frozen (SIGSTOP, a paused VM) or cut off where the
kernel still acknowledges enforces nothing, and TCP keepalives see a live peer: a request would wait for ever.
While a request runs, each statement registers its connection's socket; one watchdog thread per process shuts
down the socket of a statement older than DATABASE_QUERY_TIMEOUT + DATABASE_CLIENT_GRACE_SECONDS. The blocked
call then fails like a dropped connection: the breaker counts it and the request gets a 503. Outside requests
(migrations, backups, shells) statements may legitimately run longer and are left alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import socket
import threading
import time

from dbops.database.wrappers import attach_once
from dbops.logs import log_event

logger = logging.getLogger("dbops.breaker")

_in_request: contextvars.ContextVar[bool] = contextvars.ContextVar("dbops_in_request", default=False)
_lock = threading.Lock()
# key -> (monotonic deadline, socket descriptor, alias) of every statement running inside a request.
_running: dict[object, tuple[float, int, str]] = {}
_watchdog: threading.Thread | None = None
WATCH_INTERVAL = 0.25


def start_request() -> contextvars.Token:
    """Bound the statements of the request that starts now (the breaker middleware calls it)."""
    return _in_request.set(True)


def end_request(token: contextvars.Token) -> None:
    _in_request.reset(token)


class StatementDeadline:
    """Execute wrapper: register the statement's socket and deadline for the watchdog while it runs."""

    def __init__(self, alias: str, seconds: float) -> None:
        self.alias = alias
        self.seconds = seconds

    def __call__(self, execute, sql, params, many, context):
        if not _in_request.get():
            return execute(sql, params, many, context)
        try:
            descriptor = context["connection"].connection.pgconn.socket
        except Exception:  # no live libpq connection: nothing to bound
            return execute(sql, params, many, context)
        key = object()
        with _lock:
            _running[key] = (time.monotonic() + self.seconds, descriptor, self.alias)
        _ensure_watchdog()
        try:
            return execute(sql, params, many, context)
        finally:
            with _lock:
                _running.pop(key, None)


def attach_statement_deadline(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: give each PostgreSQL DatabaseWrapper one deadline (kept across checkouts)."""
    if connection.vendor == "postgresql":
        attach_once(connection, "dbops_statement_deadline", _configured_deadline, connection.alias)


def _configured_deadline(alias: str) -> StatementDeadline:
    from dbops.conf import get_config

    database = get_config().database
    return StatementDeadline(alias, database.client_deadline if database else 35)


def _ensure_watchdog() -> None:
    global _watchdog
    if _watchdog is not None and _watchdog.is_alive():
        return
    with _lock:
        if _watchdog is None or not _watchdog.is_alive():
            _watchdog = threading.Thread(target=_watch, name="dbops-statement-deadline", daemon=True)
            _watchdog.start()


def _watch() -> None:
    while True:
        time.sleep(WATCH_INTERVAL)
        now = time.monotonic()
        cut = []
        with _lock:
            for key, (deadline, descriptor, alias) in list(_running.items()):
                if deadline <= now:
                    del _running[key]
                    # Duplicated while the statement still holds its descriptor: the socket cut is that one.
                    with contextlib.suppress(OSError):
                        cut.append((socket.socket(fileno=os.dup(descriptor)), alias))
        for sock, alias in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            log_event(logger, logging.WARNING, "statement_cut", alias=alias, reason="no answer within the deadline")

"""Which errors mean "the database is unavailable" (trip the breaker) and which are application bugs (do not)."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolClosed, PoolTimeout

# SQLSTATEs of a server that is going away or cannot take us: connection exceptions (class 08),
# admin/crash shutdown and "cannot connect now" (57P0x), too many connections (53300).
OUTAGE_SQLSTATES = ("53300", "57P01", "57P02", "57P03", "57P04", "57P05")


def _chain(exc: BaseException | None):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_database_outage(exc: BaseException, *, count_statement_timeouts: bool = False) -> bool:
    """Tell whether `exc` (or what caused it) says the database is unreachable, rather than the query is wrong."""
    for error in _chain(exc):
        if isinstance(error, PoolTimeout | PoolClosed):
            return True  # no connection to be had (a pool replaced after an outage is closed to late callers)
        if isinstance(error, pg_errors.QueryCanceled):
            return count_statement_timeouts
        if isinstance(error, psycopg.InterfaceError):
            return True  # e.g. "the connection is closed"
        if isinstance(error, psycopg.OperationalError):
            sqlstate = error.sqlstate
            # No SQLSTATE: the client lost or never had the connection (refused, reset, timed out).
            return sqlstate is None or sqlstate.startswith("08") or sqlstate in OUTAGE_SQLSTATES
        if isinstance(error, psycopg.Error):
            return False  # IntegrityError, ProgrammingError, DataError...: application bugs
    return False

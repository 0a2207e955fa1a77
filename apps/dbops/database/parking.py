"""A thread keeps its pooled connection between requests for a moment, as a persistent connection would.

Django hands a pooled connection back at the end of every request and takes one at the start of the next: its
`connect()`/`close()`, the `connection_created` signal and psycopg_pool's getconn/putconn cost about 130,000
instructions a request, a tenth of a small request (bench/pool_overhead.py). Instead the connection is *parked*:
it stays on the thread's DatabaseWrapper, and the thread's next query takes it back after one look at its socket
(the pool's own dead-connection check). A parked connection goes back to the pool when

- its thread has not used it for `PARK_SECONDS` (the attendant thread returns it): idle threads hold nothing;
- another thread of the process needs a connection and the pool has none left to give;
- it left the pool `LEASE_SECONDS` ago: the pool's own upkeep (`max_lifetime`, drain) sees every connection;
- a refresh wants the pool idle, or the pool is closed (`release_parked`: a pool is replaced only with nothing
  checked out);
- its wrapper was left behind on the thread (ASGI gives each request its own: `release_left_behind`).
A connection after a failed query, in a transaction or with autocommit changed is never parked: Django's own
checks return it.

Only the owner thread parks and takes back; any thread may return a parked connection, under the wrapper's lock,
exactly as Django's `close()` would (`conn._pool.putconn`). Parked connections count as checked out in the pool
and are reported apart (`parked_count`), not as in use. Django reaches the connection through `ensure_connection()`
(every cursor, transaction and autocommit change), which takes it back; code that uses `connection.connection`
directly between requests must call `connection.ensure_connection()` first, as it must without a pool.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

# How long a thread may keep an unused connection: long enough to serve the next request of a busy thread, short
# enough that a quiet worker's connections are back in the pool (and the pool's `max_idle` applies) at once.
PARK_SECONDS = 1.0
# How long a connection may stay out of the pool, parked request after request, before it is handed back.
LEASE_SECONDS = 60.0

# Wrappers whose connection is parked now. Set operations are atomic under the GIL; the attendant works on copies.
_parked: set[Any] = set()
_attendant: threading.Thread | None = None
_attendant_lock = threading.Lock()


def park(wrapper: Any) -> None:
    """Keep `wrapper`'s connection on its thread (the owner thread calls this instead of returning it)."""
    wrapper.dbops_parked_at = time.monotonic()
    wrapper.dbops_parked_by = threading.get_ident()
    wrapper.dbops_parked = True
    _parked.add(wrapper)
    if _attendant is None:
        _start_attendant()


def take_back(wrapper: Any) -> bool:
    """Give the owner thread its parked connection back; False when it was returned to the pool meanwhile."""
    with wrapper.dbops_park_lock:
        was_parked = wrapper.dbops_parked
        wrapper.dbops_parked = False
        _parked.discard(wrapper)
    return was_parked and wrapper.connection is not None


def release(wrapper: Any, *, parked_before: float | None = None) -> bool:
    """Return `wrapper`'s parked connection to its pool from any thread; True when one was returned."""
    with wrapper.dbops_park_lock:
        if not wrapper.dbops_parked or (parked_before is not None and wrapper.dbops_parked_at > parked_before):
            return False
        conn, wrapper.connection = wrapper.connection, None
        wrapper.dbops_parked = False
        # Under the lock: once it is released, the owner may park again, and that must stay in the set.
        _parked.discard(wrapper)
    pool = getattr(conn, "_pool", None)
    if pool is not None:
        # As Django's own `_close()` does: the connection goes back to the pool it came from, even one replaced
        # since (which closes it).
        pool.putconn(conn)
    elif conn is not None:
        conn.close()
    return True


def release_parked(alias: str, limit: int | None = None) -> int:
    """Return up to `limit` (default: every) parked connection of `alias` in this process; say how many."""
    returned = 0
    for wrapper in list(_parked):
        if limit is not None and returned >= limit:
            break
        if wrapper.alias == alias and release(wrapper):
            returned += 1
    return returned


def release_left_behind(wrapper: Any) -> None:
    """Return what this thread parked for `wrapper`'s alias on other wrappers, which it will not use again.

    Under ASGI every request gets a DatabaseWrapper of its own on the same executor thread (Django keeps them per
    context, not per thread): the previous request's parked connection is nobody's now.
    """
    thread = threading.get_ident()
    for other in list(_parked):
        if other is not wrapper and other.alias == wrapper.alias and other.dbops_parked_by == thread:
            release(other)


def parked_count(alias: str) -> int:
    """Count the connections of `alias` parked in this process."""
    return sum(1 for wrapper in list(_parked) if wrapper.alias == alias)


def _start_attendant() -> None:
    global _attendant
    with _attendant_lock:
        if _attendant is None:
            _attendant = threading.Thread(target=_attend, name="dbops-parked-connections", daemon=True)
            _attendant.start()


def _attend() -> None:
    while True:
        time.sleep(PARK_SECONDS / 2)
        return_unused(time.monotonic() - PARK_SECONDS)


def return_unused(parked_before: float) -> None:
    """Return every connection parked before `parked_before` (monotonic seconds) to its pool."""
    for wrapper in list(_parked):
        try:
            release(wrapper, parked_before=parked_before)
        except Exception as exc:  # the attendant must outlive one failed return; the pool replaces that connection
            logger.warning("returning a parked connection of %r failed: %s", wrapper.alias, exc)


def _forget_after_fork() -> None:
    # A forked child has neither the parent's threads nor any business with its connections.
    global _attendant
    _parked.clear()
    _attendant = None


os.register_at_fork(after_in_child=_forget_after_fork)

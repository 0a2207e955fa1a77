"""Selectors over Django's native psycopg pool of an alias, and bounded connections for probes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from django.db import connections

from dbops.database.parking import parked_count, release_parked
from dbops.database.rows import one_row
from dbops.exceptions import DatabaseUnreachable

# A management command (a backup, the alert evaluator, a shell) needs a connection or two, not the web pool's
# minimum: every `manage.py` opened 20 before, so a web server plus one shell held 42.
COMMAND_POOL_MIN_SIZE = 1
COMMAND_POOL_MAX_SIZE = 2


def pool_options(alias: str) -> dict | None:
    """Return the `OPTIONS["pool"]` dict of `alias`, or None when the alias does not pool."""
    options = connections[alias].settings_dict.get("OPTIONS") or {}
    pool = options.get("pool")
    return pool if isinstance(pool, dict) else ({} if pool else None)


# False in a management command run from the shell: its pool is not the site's, and nothing waits on its events.
_serves_requests = True


def mark_command_process() -> None:
    """Say this process runs a management command from the shell (not a web server)."""
    global _serves_requests
    _serves_requests = False


def serves_requests() -> bool:
    """Tell whether this process may serve requests (a web worker, runserver, a test run), not a shell command."""
    return _serves_requests


# The web processes' pool options of each alias a command process shrank (sizing checks budget those).
_web_pool_options: dict[str, dict] = {}


def pool_max_size(alias: str) -> int | None:
    """Return the maximum connections of `alias`' pool as web processes have it, or None without a pool."""
    options = _web_pool_options.get(alias) or pool_options(alias)
    if options is None:
        return None
    return options.get("max_size") or options.get("min_size") or 4  # psycopg_pool's default min_size is 4


def pool_stats(alias: str) -> dict[str, int] | None:
    """Return `pool.get_stats()` of `alias`' pool plus its in-use count; None when the alias does not pool."""
    pool = getattr(connections[alias], "pool", None)
    if pool is None:
        return None
    stats = dict(pool.get_stats())
    stats.setdefault("pool_min", pool.min_size)
    stats.setdefault("pool_max", pool.max_size)
    # pool_size also counts connections still being opened: "in use" means checked out by a client, which dbops'
    # pool counts exactly (another engine's pool: the difference is the best there is), less the ones parked on
    # threads between requests (`parking`): those are free to take.
    checked_out = getattr(pool, "checked_out", None)
    stats["parked"] = parked_count(alias)
    stats["in_use"] = (
        checked_out - stats["parked"]
        if checked_out is not None
        else stats.get("pool_size", 0) - stats.get("pool_available", 0)
    )
    return stats


def _connect_params(alias: str, timeout: float, dbname: str | None = None) -> dict:
    params = connections[alias].get_connection_params()
    if dbname:
        params["dbname"] = dbname
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["connect_timeout"] = max(2, int(timeout + 0.999))  # libpq's smallest effective value is 2
    return params


@contextlib.contextmanager
def direct_connection(
    alias: str, timeout: float, *, statement_timeout: float | None = None, dbname: str | None = None
) -> Iterator[psycopg.Connection]:
    """Open an autocommit connection outside the pool (probes while the pool is suspect; backups; admin work).

    `timeout` bounds connecting; statements are limited to `statement_timeout` seconds (default: `timeout`;
    0: no limit, for long maintenance work). `dbname` connects to another database of the same server.
    """
    limit = timeout if statement_timeout is None else statement_timeout
    with psycopg.connect(**_connect_params(alias, timeout, dbname), autocommit=True) as conn:
        conn.execute("SELECT set_config('statement_timeout', %s, false)", [f"{int(limit * 1000)}ms"])
        yield conn


@contextlib.contextmanager
def probe_connection(alias: str, timeout: float) -> Iterator[psycopg.Connection]:
    """Yield a connection for a probe that never queues behind requests for the pool.

    An idle pooled connection is used when there is one (the probe sees what requests see); when every pooled
    connection is busy, a short-lived direct connection is opened instead, so a busy pool neither slows the
    probe nor counts a checkout timeout against itself. Statements run in one transaction with a
    `statement_timeout` of `timeout` that ends with it: a pooled connection returns unchanged.
    """
    from dbops.database.recovery import PoolHealth, revive  # recovery builds on this module

    pool = getattr(connections[alias], "pool", None)
    health = revive(alias) if pool is not None else PoolHealth.HEALTHY
    if health is PoolHealth.DOWN:
        # The pool cannot connect and the server does not answer: this worker cannot serve (ready means that).
        raise psycopg.OperationalError("the pool cannot connect and the server does not answer")
    pool = getattr(connections[alias], "pool", None)  # a new one when revive replaced it
    if pool is not None:
        pool.open()
    busy = pool is not None and not pool.get_stats().get("pool_available") and bool(getattr(pool, "checked_out", 1))
    if pool is None or (health is PoolHealth.HEALTHY and busy):
        with direct_connection(alias, timeout) as conn:
            yield conn
        return
    with pool.connection(timeout=timeout) as conn, conn.transaction():
        conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(timeout * 1000)}ms"])
        yield conn


def server_connection_limit(alias: str, *, timeout: float) -> int:
    """Return the connections the server behind `alias` allows ordinary roles: max_connections minus reserved."""
    with probe_connection(alias, timeout) as conn:
        return one_row(
            conn.execute(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
            )
        )[0]


def replace_idle_pool(alias: str) -> bool:
    """Close `alias`' pool and let a new one connect at once, only while none of its connections is checked out.

    Return False (and change nothing) while connections are checked out: replacing a busy pool had the server count
    old and new connections together (101 for a budget of 60).
    """
    wrapper = connections[alias]
    pools = type(wrapper)._connection_pools  # type: ignore[attr-defined]  # Django's postgresql backend
    pool = pools.get(alias)
    if pool is None or pool.closed:
        return True
    release_parked(alias)  # connections parked between requests are not in use: they go back first
    if getattr(pool, "checked_out", None) != 0:
        return False
    if pools.get(alias) is pool:
        pools.pop(alias)
    pool.close(timeout=1.0)
    new = wrapper.pool  # type: ignore[attr-defined]
    if new is not None:
        new.open()
    return True


def refresh_pool(alias: str) -> None:
    """Bring `alias`' pool back after an outage, never holding more than its max_size at the server.

    With nothing checked out, the pool is replaced: the old one is closed first (its idle connections died with
    the server, and its reconnection attempts wait out a backoff measured at 7-11 s) and the new one connects at
    once. With connections in use (a busy pool rather than a dead server) it is drained instead: psycopg_pool
    replaces idle connections now and busy ones when they come back, one for one.
    """
    if not replace_idle_pool(alias):
        connections[alias].pool.drain()  # type: ignore[attr-defined]


def use_command_pool(alias: str) -> None:
    """Give this process (a management command run from the shell) a small pool for `alias`."""
    mark_command_process()
    options = pool_options(alias)
    if options is None:
        return
    wrapper = connections[alias]
    if alias in type(wrapper)._connection_pools:  # type: ignore[attr-defined]
        wrapper.close_pool()  # type: ignore[attr-defined]
    max_size = max(COMMAND_POOL_MIN_SIZE, min(COMMAND_POOL_MAX_SIZE, pool_max_size(alias) or COMMAND_POOL_MAX_SIZE))
    _web_pool_options.setdefault(alias, dict(options))
    wrapper.settings_dict["OPTIONS"]["pool"] = {**options, "min_size": COMMAND_POOL_MIN_SIZE, "max_size": max_size}


def connection_budget(alias: str, *, web_workers: int, command_processes: int) -> dict[str, int] | None:
    """Return the connections `alias` may use at once.

    Every web worker's pool at max, one short-lived probe connection per worker (the breaker's probe, or a
    health probe while the pool is full: they never queue behind requests), and each command process' pool.
    """
    max_size = pool_max_size(alias)
    if max_size is None:
        return None
    web = max_size * web_workers
    commands = min(COMMAND_POOL_MAX_SIZE, max_size) * command_processes
    return {
        "pool_max": max_size,
        "workers": web_workers,
        "web": web,
        "probes": web_workers,
        "commands": commands,
        "needed": web + web_workers + commands,
    }


def server_address(alias: str) -> str:
    """Return host:port of `alias` as configured (no credentials), for messages."""
    settings = connections[alias].settings_dict
    return f"{settings.get('HOST') or 'localhost'}:{settings.get('PORT') or 5432}"


def require_reachable(alias: str, *, timeout: float) -> None:
    """Connect once outside the pool within `timeout`; raise `DatabaseUnreachable` with one line when that fails."""
    try:
        with direct_connection(alias, timeout) as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.OperationalError as exc:
        raise DatabaseUnreachable(unreachable_message(alias, exc)) from None


def unreachable_message(alias: str, exc: BaseException) -> str:
    """Say which database cannot be reached and what to do (psycopg's own text can quote the password: not used)."""
    return (
        f"database {alias!r} at {server_address(alias)} is unreachable ({type(exc).__name__}): start the server "
        "or fix DATABASE_URL, then run the command again"
    )

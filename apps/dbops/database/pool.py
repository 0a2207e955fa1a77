"""Selectors over Django's native psycopg pool of an alias, and bounded connections for probes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from django.db import connections


def pool_options(alias: str) -> dict | None:
    """Return the `OPTIONS["pool"]` dict of `alias`, or None when the alias does not pool."""
    options = connections[alias].settings_dict.get("OPTIONS") or {}
    pool = options.get("pool")
    return pool if isinstance(pool, dict) else ({} if pool else None)


def pool_max_size(alias: str) -> int | None:
    """Return the configured maximum connections of `alias`' pool, or None without a pool."""
    options = pool_options(alias)
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
    stats["in_use"] = stats.get("pool_size", 0) - stats.get("pool_available", 0)
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
    pool = getattr(connections[alias], "pool", None)
    if pool is not None:
        pool.open()
    if pool is None or not pool.get_stats().get("pool_available"):
        with direct_connection(alias, timeout) as conn:
            yield conn
        return
    with pool.connection(timeout=timeout) as conn, conn.transaction():
        conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(timeout * 1000)}ms"])
        yield conn


def server_connection_limit(alias: str, *, timeout: float) -> int:
    """Return the connections the server behind `alias` allows ordinary roles: max_connections minus reserved."""
    with probe_connection(alias, timeout) as conn:
        return conn.execute(
            "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
        ).fetchone()[0]

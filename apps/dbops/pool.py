"""Selectors for Django's native psycopg pool of a database alias."""

from __future__ import annotations

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
    """Return `pool.get_stats()` of `alias`' pool plus in-use count; None when the alias does not pool."""
    connection = connections[alias]
    pool = getattr(connection, "pool", None)
    if pool is None:
        return None
    stats = dict(pool.get_stats())
    stats.setdefault("pool_min", pool.min_size)
    stats.setdefault("pool_max", pool.max_size)
    stats["in_use"] = stats.get("pool_size", 0) - stats.get("pool_available", 0)
    return stats

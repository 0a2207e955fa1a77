"""Each web process' live signals (query latency window, slow queries, pool), shared through Django's cache.

Query windows and pool statistics live in the process that serves requests; the alert evaluator and the
dashboard run elsewhere (a cron command, another worker). Every process publishes a small snapshot at most
every PUBLISH_INTERVAL seconds from the request path (one cache write, errors swallowed: a cache outage never
breaks a request); readers combine the fresh ones with their own when they serve requests themselves (a
command's own pool and queries are not the site's). Use a shared cache (CACHE_URL=redis://) so workers and the
evaluator see each other; with a per-process cache (`cache_is_shared` is False) each process sees only itself.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import threading
import time

from django.core.cache import caches
from django.db import connections

from dbops.conf import get_config
from dbops.database.pool import pool_stats, serves_requests
from dbops.monitoring.queries import query_windows, slow_queries

SNAPSHOT_KEY = "dbops:process-snapshots"
PUBLISH_INTERVAL = 10.0
STALE_AFTER = 60.0
PROCESS = f"{socket.gethostname()}:{os.getpid()}"

_lock = threading.Lock()
_next_publish = 0.0
# (monotonic time, cumulative checkout timeouts) per alias: recent timeouts are the increase over the window.
_timeout_history: dict[str, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=64))


def _cache():
    return caches[get_config().breaker.cache_alias]


def _recent_timeouts(alias: str, cumulative: int, window: float) -> int:
    history = _timeout_history[alias]
    now = time.monotonic()
    history.append((now, cumulative))  # the first look is the baseline: nothing recent is known before it
    old = [value for at, value in history if at >= now - window]
    return cumulative - (old[0] if old else cumulative)


def process_snapshot() -> dict:
    """Return this process' signals: per alias the query window summary, slow count, pool statistics."""
    config = get_config()
    databases = {}
    for alias in connections:
        window = query_windows[alias]
        values = window.values()
        stats = pool_stats(alias)
        databases[alias] = {
            "queries": window.summary(),
            "slow": sum(v > config.slow_query_threshold_ms for v in values),
            "window_seconds": window.max_age,
            "pool": stats,
            "recent_checkout_timeouts": _recent_timeouts(alias, stats.get("requests_errors", 0), window.max_age)
            if stats
            else 0,
        }
    return {"process": PROCESS, "at": time.time(), "databases": databases, "top_slow_queries": slow_queries.top(10)}


def publish(*, force: bool = False) -> None:
    """Share this process' snapshot (at most every PUBLISH_INTERVAL seconds unless `force`)."""
    global _next_publish
    now = time.monotonic()
    if not force and now < _next_publish:
        return
    with _lock:
        if not force and now < _next_publish:
            return
        _next_publish = now + PUBLISH_INTERVAL
    snapshot = process_snapshot()
    with contextlib.suppress(Exception):
        cache = _cache()
        shared = _fresh(cache.get(SNAPSHOT_KEY) or {})
        shared[PROCESS] = snapshot
        cache.set(SNAPSHOT_KEY, shared, timeout=int(STALE_AFTER * 2))


def _fresh(shared: dict) -> dict:
    cutoff = time.time() - STALE_AFTER
    return {process: snapshot for process, snapshot in shared.items() if snapshot.get("at", 0) >= cutoff}


def fleet_snapshots() -> list[dict]:
    """Return the fresh snapshots of every publishing process, this one's taken now if it serves requests."""
    shared = {}
    with contextlib.suppress(Exception):
        shared = _fresh(_cache().get(SNAPSHOT_KEY) or {})
    if serves_requests():
        shared[PROCESS] = process_snapshot()
    else:
        shared.pop(PROCESS, None)
    return list(shared.values())


def merged_slow_queries(snapshots: list[dict], limit: int = 10) -> list[dict]:
    """Combine the processes' top slow statements (same alias and normalized SQL), costliest in total first."""
    merged: dict[tuple[str, str], dict] = {}
    for snapshot in snapshots:
        for entry in snapshot.get("top_slow_queries", []):
            key = (entry["alias"], entry["sql"])
            row = merged.setdefault(key, {**entry, "count": 0, "total_ms": 0.0, "max_ms": 0.0, "origins": {}})
            row["count"] += entry["count"]
            row["total_ms"] += entry["total_ms"]
            row["max_ms"] = max(row["max_ms"], entry["max_ms"])
            for origin, count in entry.get("origins", {}).items():
                row["origins"][origin] = row["origins"].get(origin, 0) + count
    rows = sorted(merged.values(), key=lambda r: r["total_ms"], reverse=True)[:limit]
    for row in rows:
        row["mean_ms"] = row["total_ms"] / row["count"] if row["count"] else 0.0
    return rows

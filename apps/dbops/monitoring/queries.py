"""Per-query timing through Django's `execute_wrapper`, slow-query logging, rolling windows, pool gauges.

One `QueryTimer` is attached to each `DatabaseWrapper` when it connects (`connection_created`). Django's
wrappers are per thread, so timers never cross threads; the origin of a query (the view or command that ran it)
is a context variable the middleware sets per request, so it never leaks across requests.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import re
import sys
import threading
import time
from typing import Any

from django.db import connections
from pglast import parser as pglast_parser

from dbops.conf import get_config
from dbops.database.pool import pool_stats, probe_connection
from dbops.database.rows import one_row
from dbops.database.wrappers import attach_once
from dbops.logs import log_event
from dbops.models import BackupRecord, MigrationRun
from dbops.monitoring import metrics
from dbops.monitoring.window import RollingWindow

logger = logging.getLogger("dbops.slow_query")


def _process_origin() -> str:
    argv = sys.argv
    if len(argv) > 1 and argv[0].endswith("manage.py"):
        return f"command:{argv[1]}"
    return "process"


current_origin: contextvars.ContextVar[str] = contextvars.ContextVar("dbops_origin", default=_process_origin())

query_windows: dict[str, RollingWindow] = collections.defaultdict(RollingWindow)
request_window = RollingWindow()


# Tokens of PostgreSQL's own lexer (libpg_query through pglast) that carry data: every kind of literal and bind
# parameter. Comments carry whatever a developer wrote into them: both kinds are dropped.
_LITERALS = frozenset({"SCONST", "USCONST", "ICONST", "FCONST", "BCONST", "XCONST", "PARAM"})
_COMMENTS = frozenset({"C_COMMENT", "SQL_COMMENT"})
_OPERANDS = _LITERALS | {"IDENT", "UIDENT", "ASCII_41", "ASCII_93"}  # a "-" after these is subtraction
_DRIVER_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s")
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SPACE = re.compile(r"\s+")
UNREADABLE = "(statement the SQL lexer cannot read: not shown)"
MAX_ORIGINS = 5  # views or commands remembered per slow statement


def normalize_sql(sql: str) -> str:
    """Strip every literal, parameter and comment from `sql` with PostgreSQL's lexer, so it can be logged.

    A statement the lexer cannot read (an unterminated quote, say) is not shown at all: a pattern that guesses
    where a string ends is how `E'...'` strings and quotes inside identifiers leaked before.
    """
    sql = _DRIVER_PLACEHOLDER.sub("$0", sql.replace("%%", "%"))  # psycopg's %s placeholders: parameters too
    try:
        tokens = pglast_parser.scan(sql)
    except pglast_parser.ParseError:
        return UNREADABLE
    pieces: list[str] = []
    names: list[str] = []
    position = 0
    for token in tokens:
        pieces.append(sql[position : token.start])  # the white space between tokens
        position = token.end + 1
        if token.name in _COMMENTS:
            continue
        literal = token.name in _LITERALS
        if literal and names[-1:] == ["ASCII_45"] and not pieces[-1] and names[-2:-1] != [] and names[-2] in _OPERANDS:
            pass  # "a -5": subtraction from an operand, the "-" stays
        elif literal and names[-1:] == ["ASCII_45"] and not pieces[-1]:
            del pieces[-2:]  # "-5" is one literal: drop the sign with the gap before the number
        pieces.append("?" if literal else sql[token.start : position])
        names.append(token.name)
    text = "".join(pieces) + sql[position:]
    return _SPACE.sub(" ", _LIST.sub("(...)", text)).strip()


class SlowQueryStats:
    """The slowest statements of this process by normalized SQL (bounded: the least seen are dropped)."""

    def __init__(self, max_entries: int = 200) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], dict] = {}

    def add(self, alias: str, sql: str, duration_ms: float, origin: str = "") -> None:
        with self._lock:
            entry = self._entries.get((alias, sql))
            if entry is None:
                if len(self._entries) >= self.max_entries:
                    del self._entries[min(self._entries, key=lambda k: self._entries[k]["count"])]
                entry = self._entries[(alias, sql)] = {"alias": alias, "sql": sql, "count": 0, "total_ms": 0.0}
                entry["max_ms"] = 0.0
                entry["origins"] = {}
            entry["count"] += 1
            entry["total_ms"] += duration_ms
            entry["max_ms"] = max(entry["max_ms"], duration_ms)
            origins = entry["origins"]
            if origin and (origin in origins or len(origins) < MAX_ORIGINS):  # the views and commands that ran it
                origins[origin] = origins.get(origin, 0) + 1

    def top(self, limit: int = 10) -> list[dict]:
        with self._lock:
            rows = [{**e, "origins": dict(e["origins"])} for e in self._entries.values()]
        return sorted(rows, key=lambda e: e["total_ms"], reverse=True)[:limit]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


slow_queries = SlowQueryStats()


class QueryTimer:
    """An `execute_wrapper`: time every query of one alias, record it, log it when slow."""

    def __init__(self, alias: str) -> None:
        config = get_config()
        self.alias = alias
        self.slow_ms = config.slow_query_threshold_ms
        self.budget_ms = config.performance_threshold_ms
        self.window = query_windows[alias]
        # Label lookups resolved once: they are the expensive part of prometheus_client on a hot path.
        self.histogram = metrics.QUERY_DURATION.labels(alias)
        self.slow_counter = metrics.SLOW_QUERIES.labels(alias)
        self.budget_counter = metrics.BUDGET_VIOLATIONS.labels(alias)

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            seconds = time.perf_counter() - started
            self.histogram.observe(seconds)
            duration_ms = seconds * 1000
            self.window.add(duration_ms)
            if duration_ms > self.budget_ms:
                self.budget_counter.inc()
                if duration_ms > self.slow_ms:
                    self._slow(sql, duration_ms)

    def _slow(self, sql: str, duration_ms: float) -> None:
        self.slow_counter.inc()
        normalized = normalize_sql(sql)
        origin = current_origin.get()
        slow_queries.add(self.alias, normalized, duration_ms, origin)
        log_event(
            logger,
            logging.WARNING,
            "slow_query",
            alias=self.alias,
            duration_ms=round(duration_ms, 1),
            threshold_ms=self.slow_ms,
            origin=origin,
            sql=normalized,
        )


def attach_query_timer(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: give this DatabaseWrapper one timer (it keeps it across checkouts)."""
    attach_once(connection, "dbops_query_timer", QueryTimer, connection.alias)


def refresh_pool_metrics() -> None:
    """Copy each alias' pool statistics into the pool gauges of this process."""
    for alias in connections:
        stats = pool_stats(alias)
        if stats is None:
            continue
        for key, gauge in metrics.POOL_STATS.items():
            gauge.labels(alias).set(stats.get(key, 0))
        metrics.POOL_WAIT_SECONDS.labels(alias).set(stats.get("requests_wait_ms", 0) / 1000)


def refresh_server_metrics(timeout: float = 1.0) -> None:
    """Count the server's connections for our application_name (the truth, unlike pool checkouts)."""
    for alias in connections:
        options = connections[alias].settings_dict.get("OPTIONS") or {}
        name = options.get("application_name")
        if not name or "pool" not in options:
            continue
        try:
            with probe_connection(alias, timeout) as conn:
                count, limit = one_row(
                    conn.execute(
                        "SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity"
                        " WHERE application_name = %s",
                        [name],
                    )
                )
        except Exception:  # an unreachable server is reported by health and dbops_database_up, not a scrape error
            metrics.DATABASE_UP.labels(alias).set(0)
            continue
        metrics.DATABASE_UP.labels(alias).set(1)
        metrics.SERVER_CONNECTIONS.labels(alias).set(count)
        metrics.SERVER_MAX_CONNECTIONS.labels(alias).set(limit)


def refresh_history_metrics(timeout: float = 1.0) -> None:
    """Export the backup and migration history facts the Prometheus alerting rules use.

    Read through a probe connection, like the server metrics: a scrape's own queries stay out of the query
    statistics it reports.
    """
    backups, runs = BackupRecord._meta.db_table, MigrationRun._meta.db_table
    query = f"""
        SELECT
          (SELECT extract(epoch FROM started_at) FROM {backups} WHERE status = 'succeeded'
            ORDER BY started_at DESC LIMIT 1),
          (SELECT status FROM {backups} WHERE status <> 'running' ORDER BY started_at DESC LIMIT 1),
          (SELECT verification FROM {backups} WHERE status = 'succeeded' ORDER BY started_at DESC LIMIT 1),
          (SELECT status FROM {runs} WHERE status <> 'running' ORDER BY started_at DESC LIMIT 1)
    """  # noqa: S608 - table names from the models, no input
    try:
        with probe_connection("default", timeout) as conn:
            success_at, last_status, verification, run_status = one_row(conn.execute(query))
    except Exception:  # noqa: S110 - unreachable or not migrated yet: the gauges keep their last values
        return
    metrics.BACKUP_LAST_SUCCESS.set(float(success_at or 0))
    metrics.BACKUP_LAST_FAILED.set(int(last_status == BackupRecord.Status.FAILED))
    metrics.BACKUP_VERIFICATION_FAILED.set(int(verification == BackupRecord.Verification.FAILED))
    metrics.MIGRATION_LAST_RUN_FAILED.set(int(run_status == MigrationRun.Status.FAILED))


def performance_report() -> dict:
    """Report this process' latency percentiles, slow queries, pool statistics and budget compliance."""
    config = get_config()
    aliases: dict[str, dict[str, Any]] = {}
    for alias in connections:
        values = query_windows[alias].values()
        aliases[alias] = {
            "queries": query_windows[alias].summary(budget_ms=config.performance_threshold_ms),
            "slow_queries": sum(v > config.slow_query_threshold_ms for v in values),
            "budget_violations": sum(v > config.performance_threshold_ms for v in values),
            "pool": pool_stats(alias),
        }
    return {
        "scope": "this worker process",
        "window_seconds": request_window.max_age,
        "slow_query_threshold_ms": config.slow_query_threshold_ms,
        "performance_threshold_ms": config.performance_threshold_ms,
        "requests": request_window.summary(),
        "databases": aliases,
        "top_slow_queries": slow_queries.top(10),
        "within_budget": all(a["queries"]["within_budget"] for a in aliases.values()),
    }

"""Production self-test: is this site's database set-up ready? One line per condition, each measured for real.

The seed's "full-suite", "connection-pooling", "latency" and "load" suites as one service: enforcement,
connectivity, connection establishment time (budget 50 ms), query latency p95 through the pool (budget
DATABASE_PERFORMANCE_THRESHOLD_MS), pool sizing against the server's max_connections, a short load run,
backup freshness, applied migrations, and the breaker. When the database is unreachable the checks that need
it fail at once instead of each waiting for its own timeout.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from dbops.breaker.state import State, get_breaker
from dbops.conf import enforce_postgresql, get_config, mask_url
from dbops.database.pool import connection_budget, direct_connection, server_connection_limit
from dbops.database.rows import one_row
from dbops.health.backups import backup_findings
from dbops.loadtest import LoadPlan, run_load
from dbops.migrations_safety.status import pending_migrations
from dbops.monitoring.window import percentile

# The seed's budget for establishing a new database connection.
CONNECTION_BUDGET_MS = 50
PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclasses.dataclass(frozen=True)
class SelftestLine:
    name: str
    status: str
    detail: str
    measured: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SelftestOptions:
    alias: str = "default"
    connect_samples: int = 10
    query_samples: int = 200
    load_users: int = 50
    load_seconds: float = 3.0
    connect_budget_ms: float = CONNECTION_BUDGET_MS


def _enforcement(options: SelftestOptions) -> SelftestLine:
    try:
        enforce_postgresql(connections[options.alias].settings_dict, required_by="the production self-test")
    except ImproperlyConfigured as exc:
        return SelftestLine("enforcement", FAIL, str(exc))
    return SelftestLine("enforcement", PASS, "PostgreSQL through psycopg 3 with Django's native pool")


def _connectivity(options: SelftestOptions) -> SelftestLine:
    timeout = float(get_config().health.probe_timeout)
    with direct_connection(options.alias, timeout=timeout) as conn:
        version = one_row(conn.execute("SHOW server_version"))[0]
    return SelftestLine("connectivity", PASS, f"PostgreSQL {version}", {"server_version": version})


def _connection_time(options: SelftestOptions) -> SelftestLine:
    timeout = float(get_config().health.probe_timeout)
    samples = []
    for _ in range(options.connect_samples):
        started = time.perf_counter()
        with direct_connection(options.alias, timeout=timeout) as conn:
            conn.execute("SELECT 1")
            samples.append((time.perf_counter() - started) * 1000)
    p95 = percentile(samples, 95)
    status = PASS if p95 <= options.connect_budget_ms else FAIL
    detail = f"new connection p95 {p95:.1f} ms over {len(samples)} (budget {options.connect_budget_ms:g} ms)"
    return SelftestLine("connection establishment", status, detail, {"p95_ms": round(p95, 2)})


def _query_latency(options: SelftestOptions) -> SelftestLine:
    budget = get_config().performance_threshold_ms
    connection = connections[options.alias]
    samples = []
    try:
        for _ in range(options.query_samples):
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    p95 = percentile(samples, 95)
    status = PASS if p95 <= budget else FAIL
    detail = f"SELECT 1 through the pool p95 {p95:.2f} ms over {len(samples)} (budget {budget} ms)"
    return SelftestLine("query latency", status, detail, {"p95_ms": round(p95, 2)})


def _pool_sizing(options: SelftestOptions) -> SelftestLine:
    config = get_config()
    budget = connection_budget(
        options.alias, web_workers=config.web_workers, command_processes=config.command_processes
    )
    if budget is None:
        return SelftestLine("pool sizing", FAIL, "no connection pool configured")
    available = server_connection_limit(options.alias, timeout=float(config.health.probe_timeout))
    max_size, needed = budget["pool_max"], budget["needed"]
    measured = {**budget, "server_allows": available}
    summary = (
        f"pool max {max_size} x {config.web_workers} worker(s) + {budget['probes']} probe(s) + {budget['commands']} "
        f"for {config.command_processes} command process(es) = {needed} of {available} server connections"
    )
    if needed > available:
        return SelftestLine("pool sizing", FAIL, f"{summary}: lower the pool or WEB_CONCURRENCY", measured)
    if max_size < config.web_threads:
        return SelftestLine(
            "pool sizing", WARN, f"{summary}; fewer than GUNICORN_THREADS={config.web_threads}", measured
        )
    return SelftestLine("pool sizing", PASS, summary, measured)


def _load(options: SelftestOptions) -> SelftestLine:
    if options.load_users <= 0:
        return SelftestLine("load", WARN, "skipped (--load-users 0)")
    plan = LoadPlan(
        users=options.load_users, duration=options.load_seconds, think_ms=100, ramp_up=0.5, alias=options.alias
    )
    report = run_load(plan)
    total = report["latency_ms"]["total"]
    detail = (
        f"{report['users']} users, {report['requests']} requests, {report['errors']} errors, "
        f"p95 {total['p95']} ms (budget {report['budget_ms']} ms)"
    )
    measured = {"requests": report["requests"], "errors": report["errors"], "p95_ms": total["p95"]}
    return SelftestLine("load", PASS if report["passed"] else FAIL, detail, measured)


def _backups(options: SelftestOptions) -> SelftestLine:
    if not get_config().backup_enabled:
        return SelftestLine("backups", WARN, "backups are disabled (DATABASE_BACKUP_ENABLED=false)")
    findings = backup_findings(alias=options.alias, timeout=float(get_config().health.probe_timeout))
    if not findings:
        return SelftestLine("backups", PASS, "a fresh, successful backup exists")
    worst = FAIL if any(f.level == "failure" for f in findings) else WARN
    return SelftestLine("backups", worst, "; ".join(f.message for f in findings))


def _migrations(options: SelftestOptions) -> SelftestLine:
    pending = pending_migrations(options.alias, timeout=float(get_config().health.probe_timeout))
    if pending:
        names = ", ".join(f"{app}.{name}" for app, name in pending[:5])
        return SelftestLine("migrations", FAIL, f"{len(pending)} unapplied: {names}", {"pending": len(pending)})
    return SelftestLine("migrations", PASS, "every migration is applied", {"pending": 0})


def _breaker(options: SelftestOptions) -> SelftestLine:
    state = get_breaker().current(force=True)
    if state.state == State.CLOSED:
        return SelftestLine("breaker", PASS, "closed")
    return SelftestLine("breaker", FAIL, f"{state.state}: requests are being refused; see manage.py breaker status")


Check = Callable[[SelftestOptions], SelftestLine]
# (name, check, needs the database)
CHECKS: tuple[tuple[str, Check, bool], ...] = (
    ("enforcement", _enforcement, False),
    ("connectivity", _connectivity, True),
    ("connection establishment", _connection_time, True),
    ("query latency", _query_latency, True),
    ("pool sizing", _pool_sizing, True),
    ("load", _load, True),
    ("backups", _backups, True),
    ("migrations", _migrations, True),
    ("breaker", _breaker, False),
)


def run_selftest(options: SelftestOptions | None = None, *, progress: Callable[[SelftestLine], None] | None = None):
    """Run every check in order; return {"passed": bool, "lines": [...]}."""
    options = options or SelftestOptions()
    lines: list[SelftestLine] = []
    reachable = True
    for name, check, needs_database in CHECKS:
        started = time.perf_counter()
        if needs_database and not reachable:
            line = SelftestLine(name, FAIL, "not run: the database is unreachable")
        else:
            try:
                line = check(options)
            except Exception as exc:
                message = mask_url(str(exc)).strip().splitlines()
                line = SelftestLine(name, FAIL, f"{type(exc).__name__}: {message[0][:200] if message else ''}")
                if name == "connectivity":
                    reachable = False
        line.measured.setdefault("seconds", round(time.perf_counter() - started, 3))
        lines.append(line)
        if progress:
            progress(line)
    return {"passed": all(line.status != FAIL for line in lines), "lines": [line.as_dict() for line in lines]}

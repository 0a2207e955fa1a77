"""Alert rules: each turns live signals into `Signal`s (firing or clear) for its subjects.

A rule has a stable name and severity, reads its threshold from settings, and words its message as what to do.
Signals come from the fleet's process snapshots (latency, slow queries, pool), the breaker's shared state,
the backup and migration history, the readiness checks and the server's own connection count. A rule whose
source cannot be read says nothing (the health-check rule reports the database itself).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator

from django.db import connections
from health_check.exceptions import ServiceWarning

from dbops.breaker.state import State, get_breaker
from dbops.conf import get_config
from dbops.database.server import server_status
from dbops.health import readiness_checks
from dbops.health.backups import backup_findings
from dbops.insights.checks import THRESHOLD_CODES
from dbops.insights.shared import latest_report
from dbops.models import Alert, BackupRecord, MigrationRun
from dbops.monitoring.snapshots import fleet_snapshots

WARNING, CRITICAL = Alert.Severity.WARNING, Alert.Severity.CRITICAL


@dataclasses.dataclass(frozen=True)
class Signal:
    """A rule's verdict on one subject at one evaluation."""

    rule: str
    subject: str
    firing: bool
    severity: str = WARNING
    message: str = ""
    value: float | None = None
    threshold: float | None = None


class Context:
    """The signals' sources, each read at most once per evaluation."""

    @functools.cached_property
    def snapshots(self) -> list[dict]:
        return fleet_snapshots()

    def databases(self) -> Iterator[tuple[str, list[dict]]]:
        """Yield (alias, that alias' entry of every process snapshot)."""
        for alias in connections:
            yield alias, [s["databases"][alias] for s in self.snapshots if alias in s.get("databases", {})]

    @functools.cached_property
    def probe_timeout(self) -> float:
        return float(get_config().health.probe_timeout)


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    evaluate: Callable[[Context], Iterator[Signal]]
    description: str


def _query_latency(ctx: Context) -> Iterator[Signal]:
    config = get_config()
    budget = config.performance_threshold_ms
    for alias, entries in ctx.databases():
        judged = [e["queries"] for e in entries if e["queries"]["count"] >= config.alerts.min_queries]
        if not judged:
            yield Signal("query_latency_p95", alias, False)
            continue
        p95 = max(q["p95_ms"] for q in judged)
        yield Signal(
            "query_latency_p95",
            alias,
            p95 > budget,
            WARNING,
            f"query p95 on {alias} is {p95:.1f} ms, over the {budget} ms budget: open the dashboard's top slow "
            "queries (or /health/database/performance) and fix or index the worst statement",
            p95,
            budget,
        )


def _slow_query_rate(ctx: Context) -> Iterator[Signal]:
    limit = get_config().alerts.slow_queries_per_minute
    for alias, entries in ctx.databases():
        minutes = max((e["window_seconds"] for e in entries), default=300) / 60
        rate = sum(e["slow"] for e in entries) / minutes
        yield Signal(
            "slow_query_rate",
            alias,
            rate > limit,
            WARNING,
            f"{rate:.1f} slow queries/min on {alias} (limit {limit}, slow > "
            f"{get_config().slow_query_threshold_ms} ms): see the slow-query log (dbops.slow_query) for the SQL",
            round(rate, 2),
            limit,
        )


def _pool_utilization(ctx: Context) -> Iterator[Signal]:
    limit = get_config().alerts.pool_utilization_percent
    for alias, entries in ctx.databases():
        pools = [e["pool"] for e in entries if e.get("pool") and e["pool"].get("pool_max")]
        if not pools:
            continue
        percent = max(100 * p["in_use"] / p["pool_max"] for p in pools)
        yield Signal(
            "pool_utilization",
            alias,
            percent >= limit,
            WARNING,
            f"pool of {alias} is {percent:.0f} % checked out (limit {limit} %): raise DATABASE_POOL_MAX_OVERFLOW if "
            "the server has room (selftest shows it), or find the slow requests holding connections",
            round(percent, 1),
            limit,
        )


def _pool_waiting(ctx: Context) -> Iterator[Signal]:
    for alias, entries in ctx.databases():
        pools = [e for e in entries if e.get("pool")]
        if not pools:
            continue
        waiting = sum(e["pool"].get("requests_waiting", 0) for e in pools)
        timeouts = sum(e.get("recent_checkout_timeouts", 0) for e in pools)
        yield Signal(
            "pool_exhausted",
            alias,
            waiting > 0 or timeouts > 0,
            CRITICAL,
            f"requests are queueing for {alias}'s pool ({waiting} waiting, {timeouts} checkout timeout(s) in the "
            "window): the pool is exhausted; raise its size or cut request time holding connections",
            waiting + timeouts,
            0,
        )


def _breaker(ctx: Context) -> Iterator[Signal]:
    config = get_config().breaker
    if not config.enabled:
        return
    state = get_breaker().current(force=True)
    # Half-open means a probe reached the server: recovery is being confirmed, not a new failure.
    yield Signal(
        "breaker_open",
        config.alias,
        state.state == State.OPEN,
        CRITICAL,
        f"the circuit breaker for {config.alias} is open: the database is failing and requests get 503; "
        "check the server, then `manage.py breaker status`",
    )


def _backups(ctx: Context) -> Iterator[Signal]:
    if not get_config().backup_enabled:
        return
    findings = backup_findings(timeout=ctx.probe_timeout)
    newest = BackupRecord.objects.exclude(status=BackupRecord.Status.RUNNING).order_by("-started_at").first()
    newest_success = BackupRecord.objects.filter(status="succeeded").order_by("-started_at").first()
    stale = [f.message for f in findings if "old" in f.message or "no successful backup" in f.message]
    yield Signal(
        "backup_failed",
        "default",
        newest is not None and newest.status == BackupRecord.Status.FAILED,
        CRITICAL,
        f"the last backup (#{newest.pk if newest else '-'}) failed: read its error in the admin's backup history, "
        "fix it and run `manage.py backup`",
    )
    yield Signal(
        "backup_stale",
        "default",
        bool(stale),
        WARNING,
        "; ".join(stale) + ": check the backup schedule (ops/cron, systemd, CronJob)" if stale else "",
    )
    yield Signal(
        "backup_verification_failed",
        "default",
        newest_success is not None and newest_success.verification == BackupRecord.Verification.FAILED,
        CRITICAL,
        f"backup #{newest_success.pk if newest_success else '-'} failed verification (it may not restore): "
        "take a new backup and run `manage.py backup_verify`",
    )


def _migration_advice(run: MigrationRun) -> str:
    if run.kind == MigrationRun.Kind.ROLLBACK:
        return (
            "the schema is where the failed migration left it: read the run in the admin's migration runs, fix what "
            f"failed, then roll back again (`manage.py migration_rollback`, target {run.target or '-'}) or restore"
        )
    return "read it in the admin's migration runs, fix and re-run `manage.py migration_apply`"


def _migrations(ctx: Context) -> Iterator[Signal]:
    run = MigrationRun.objects.exclude(status=MigrationRun.Status.RUNNING).order_by("-started_at").first()
    failed = run is not None and run.status == MigrationRun.Status.FAILED
    message = f"{run.kind} run #{run.pk} failed: {run.error}; {_migration_advice(run)}" if run and failed else ""
    yield Signal("migration_run_failed", "default", failed, CRITICAL, message)


def _health_checks(ctx: Context) -> Iterator[Signal]:
    for check_class, kwargs in readiness_checks():
        if check_class.__name__ == "BreakerClosed":
            continue  # breaker_open says it better
        check = check_class(**kwargs)
        subject = f"{check_class.__name__}({kwargs.get('alias', '')})"
        try:
            check.run()
            failing, message = False, ""
        except ServiceWarning:
            failing, message = False, ""
        except Exception as exc:
            failing, message = True, getattr(exc, "message", None) or type(exc).__name__
        yield Signal(
            "health_check_failing",
            subject,
            failing,
            CRITICAL,
            f"readiness check {subject} fails: {message}; load balancers take this instance out of rotation",
        )


def _server_connections(ctx: Context) -> Iterator[Signal]:
    config = get_config()
    limit = config.health.connections_warn_percent
    for alias in connections:
        try:
            status = server_status(alias, thresholds=config.health, timeout=ctx.probe_timeout)
        except Exception:  # noqa: S112 - an unreachable server is health_check_failing's alert
            continue
        percent = 100 * status.connections / status.max_connections if status.max_connections else 0.0
        yield Signal(
            "server_connections_high",
            alias,
            percent >= limit,
            WARNING,
            f"the server behind {alias} uses {status.connections} of {status.max_connections} connections "
            f"({percent:.0f} %, limit {limit} %): new connections will soon be refused; lower pools x workers or "
            "raise max_connections",
            round(percent, 1),
            limit,
        )


def _insights(ctx: Context) -> Iterator[Signal]:
    for alias in connections:
        if alias == "replica":
            continue
        try:
            report = latest_report(alias)
        except Exception:  # noqa: S112 - an unreachable server is health_check_failing's alert
            continue
        for code in THRESHOLD_CODES:
            found = [i for i in report["insights"] if i["code"] == code and i["level"] in ("warn", "critical")]
            critical = any(i["level"] == "critical" for i in found)
            objects = "; ".join(
                f"{i['object']}" + (f" ({i['model']})" if i["model"] else "") + f": {i['message']}" for i in found[:3]
            )
            yield Signal(
                "database_insight",
                f"{code}({alias})",
                bool(found),
                CRITICAL if critical else WARNING,
                f"{code} on {alias}: {objects}; fix: {found[0]['fix']} (`manage.py db_insights --code {code}`)"
                if found
                else "",
                len(found),
                0,
            )


RULES = (
    Rule("query_latency_p95", WARNING, _query_latency, "p95 query time over DATABASE_PERFORMANCE_THRESHOLD_MS"),
    Rule("slow_query_rate", WARNING, _slow_query_rate, "slow queries per minute over the limit"),
    Rule("pool_utilization", WARNING, _pool_utilization, "pool checked out at or above the limit"),
    Rule("pool_exhausted", CRITICAL, _pool_waiting, "requests waiting for a connection, or checkout timeouts"),
    Rule("breaker_open", CRITICAL, _breaker, "the circuit breaker is not closed"),
    # One rule, three signals: backup_failed, backup_stale, backup_verification_failed.
    Rule("backup_failed", CRITICAL, _backups, "backups: failed, stale, failed verification"),
    Rule("migration_run_failed", CRITICAL, _migrations, "the newest guarded migration run failed"),
    Rule("health_check_failing", CRITICAL, _health_checks, "a readiness check fails"),
    Rule("server_connections_high", WARNING, _server_connections, "server connections near max_connections"),
    Rule("database_insight", WARNING, _insights, "a database insight over its threshold (critical ones: critical)"),
)
RULE_BY_NAME = {rule.name: rule for rule in RULES}

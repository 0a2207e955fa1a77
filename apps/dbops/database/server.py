"""Selector: what the PostgreSQL server says about itself, graded against the health thresholds."""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

from dbops.conf import HealthConfig
from dbops.database.pool import probe_connection
from dbops.database.rows import one_row

Level = Literal["warning", "failure"]


class Finding(NamedTuple):
    """One thing an operator should look at (a tuple, so `level, message = finding` works)."""

    level: Level
    message: str


@dataclasses.dataclass(frozen=True)
class ServerStatus:
    """Facts read from the server in one probe, plus the findings against thresholds."""

    version: str
    in_recovery: bool
    connections: int
    max_connections: int
    long_transactions: int
    idle_in_transaction: int
    blocked_sessions: int
    replication_lag_seconds: float | None
    database_size_bytes: int
    findings: tuple[Finding, ...]
    # host:port the probe reached: with a multi-host DATABASE_URL, which server is the primary now.
    address: str = ""

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["findings"] = [f._asdict() for f in self.findings]
        return data


SERVER_SQL = """
SELECT
  current_setting('server_version'),
  pg_is_in_recovery(),
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
  current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int,
  (SELECT count(*) FROM pg_stat_activity
    WHERE xact_start < now() - make_interval(secs => %(long_tx)s) AND pid <> pg_backend_pid()
      AND backend_type = 'client backend'),
  (SELECT count(*) FROM pg_stat_activity
    WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
      AND state_change < now() - make_interval(secs => %(idle_tx)s)),
  (SELECT count(*) FROM pg_stat_activity
    WHERE cardinality(pg_blocking_pids(pid)) > 0 AND wait_event_type = 'Lock'
      AND query_start < now() - make_interval(secs => %(lock_wait)s)),
  -- A caught-up replica of an idle primary has an old replay timestamp but no lag.
  CASE WHEN NOT pg_is_in_recovery() THEN NULL
       WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
       ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
  pg_database_size(current_database())
"""


def server_status(alias: str, *, thresholds: HealthConfig, timeout: float) -> ServerStatus:
    """Read the server's state through a bounded probe connection and grade it."""
    with probe_connection(alias, timeout) as conn:
        row = one_row(
            conn.execute(
                SERVER_SQL,
                {
                    "long_tx": thresholds.long_transaction_seconds,
                    "idle_tx": thresholds.idle_in_transaction_seconds,
                    "lock_wait": thresholds.lock_wait_seconds,
                },
            )
        )
        address = f"{conn.info.host}:{conn.info.port}"
    version, in_recovery, used, available, long_tx, idle_tx, blocked, lag, size = row
    return ServerStatus(
        version=version,
        in_recovery=in_recovery,
        connections=used,
        max_connections=available,
        long_transactions=long_tx,
        idle_in_transaction=idle_tx,
        blocked_sessions=blocked,
        replication_lag_seconds=lag,
        database_size_bytes=size,
        findings=tuple(_grade(used, available, long_tx, idle_tx, blocked, lag, size, thresholds)),
        address=address,
    )


def _grade(used, available, long_tx, idle_tx, blocked, lag, size, t: HealthConfig):
    percent = 100 * used / available if available else 100
    if percent >= 95:
        yield Finding("failure", f"{used} of {available} server connections in use: new connections will be refused")
    elif percent >= t.connections_warn_percent:
        yield Finding(
            "warning", f"{used} of {available} server connections in use ({percent:.0f} %): check pool sizes x workers"
        )
    if long_tx:
        yield Finding(
            "warning",
            f"{long_tx} transaction(s) open longer than {t.long_transaction_seconds} s: "
            "see pg_stat_activity.xact_start (they block vacuum and hold locks)",
        )
    if idle_tx:
        yield Finding(
            "warning",
            f"{idle_tx} session(s) idle in transaction for more than {t.idle_in_transaction_seconds} s: "
            "an application forgot to commit; consider idle_in_transaction_session_timeout",
        )
    if blocked:
        yield Finding(
            "warning",
            f"{blocked} session(s) blocked by locks for more than {t.lock_wait_seconds} s: "
            "see pg_blocking_pids() in pg_stat_activity",
        )
    if lag is not None and lag > t.replication_lag_seconds:
        yield Finding("warning", f"replica is {lag:.0f} s behind the primary (limit {t.replication_lag_seconds} s)")
    if t.database_size_warn_mb and size > t.database_size_warn_mb * 1024 * 1024:
        yield Finding(
            "warning", f"database is {size // (1024 * 1024)} MB, above the {t.database_size_warn_mb} MB threshold"
        )

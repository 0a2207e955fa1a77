"""PgBouncer's admin console (SHOW POOLS / SHOW STATS), read for health when DATABASE_PGBOUNCER_ADMIN_URL is set."""

from __future__ import annotations

import psycopg

from dbops.conf import get_config, parse_database_url
from dbops.database.pool import direct_connection
from dbops.database.rows import one_row


def _connect(url: str, timeout: float) -> psycopg.Connection:
    parsed = parse_database_url(url, variable="DATABASE_PGBOUNCER_ADMIN_URL")
    # The admin console speaks only the simple query protocol: client-side binding, no prepared statements.
    return psycopg.connect(
        host=parsed["HOST"],
        port=parsed["PORT"] or 6432,
        user=parsed["USER"],
        password=parsed["PASSWORD"] or None,
        dbname="pgbouncer",
        autocommit=True,
        connect_timeout=max(2, int(timeout)),
        cursor_factory=psycopg.ClientCursor,
        prepare_threshold=None,
    )


def _rows(conn: psycopg.Connection, command: str) -> list[dict]:
    cursor = conn.execute(command)
    names = [column.name for column in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def pgbouncer_report(*, timeout: float | None = None) -> dict | None:
    """Return PgBouncer's pools and stats (None when no admin URL is configured)."""
    url = get_config().pgbouncer_admin_url
    if not url:
        return None
    timeout = timeout or float(get_config().health.probe_timeout)
    with _connect(url, timeout) as conn:
        pools = [p for p in _rows(conn, "SHOW POOLS") if p.get("database") != "pgbouncer"]
        stats = [s for s in _rows(conn, "SHOW STATS") if s.get("database") != "pgbouncer"]
    return {
        "pools": pools,
        "stats": stats,
        "clients_waiting": sum(int(p.get("cl_waiting") or 0) for p in pools),
        "max_wait_seconds": max((int(p.get("maxwait") or 0) for p in pools), default=0),
    }


def session_statement_timeout(alias: str, *, timeout: float) -> tuple[str, str]:
    """Return (role, statement_timeout a new server session starts with) as seen through `alias`.

    Behind PgBouncer in transaction mode no startup option reaches the server: only the role's (or database's)
    own setting bounds a runaway statement. `reset_val` is that start value, whatever the session set since.
    """
    with direct_connection(alias, timeout) as conn:
        role, reset_val = one_row(
            conn.execute("SELECT current_user, reset_val FROM pg_settings WHERE name = 'statement_timeout'")
        )
        return role, reset_val

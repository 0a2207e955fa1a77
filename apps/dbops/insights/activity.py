"""The statements running on the database now, and cancelling or terminating one (the admin's actions)."""

from __future__ import annotations

import dataclasses
import datetime

from dbops.database.pool import probe_connection


@dataclasses.dataclass(frozen=True)
class Backend:
    pid: int
    user: str
    application: str
    client: str
    state: str
    running_for: datetime.timedelta | None
    waiting_on: str
    query: str


def running_backends(alias: str = "default", timeout: float = 5.0) -> list[Backend]:
    """Return the other client backends of this database, longest-running first."""
    with probe_connection(alias, timeout) as conn:
        rows = conn.execute(
            """
            SELECT pid, coalesce(usename, ''), application_name, coalesce(client_addr::text, 'local'), state,
                   now() - coalesce(query_start, backend_start), coalesce(wait_event_type || ': ' || wait_event, ''),
                   query
            FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
            ORDER BY state = 'active' DESC, 6 DESC NULLS LAST
            """
        ).fetchall()
    return [Backend(*row) for row in rows]


def signal_backend(pid: int, *, terminate: bool, alias: str = "default", timeout: float = 5.0) -> Backend | None:
    """Cancel the backend's running statement (or end its session): return it as it was, None when it is gone.

    Only a client backend of this database is signalled; PostgreSQL itself refuses one of another role unless the
    connection's role may (pg_signal_backend).
    """
    found = [backend for backend in running_backends(alias, timeout) if backend.pid == pid]
    if not found:
        return None
    function = "pg_terminate_backend" if terminate else "pg_cancel_backend"
    with probe_connection(alias, timeout) as conn:
        conn.execute(f"SELECT {function}(%s)", [pid])
    return found[0]

"""pg_stat_statements, read for the top statements (I009) and the index advice on them (I011)."""

from __future__ import annotations

MARK = "/* dbops insights */ "  # every insight statement starts with it: not the site's workload


def statement_statistics(conn) -> tuple[str | None, list[str]]:
    """Return the extension's schema when its statistics can be read, else None and the steps that enable it."""
    installed = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_stat_statements'"
    ).fetchone()
    loaded = "pg_stat_statements" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    if installed and loaded:
        return installed[0], []
    missing = [] if loaded else ["shared_preload_libraries = 'pg_stat_statements' (restart)"]
    missing += [] if installed else ["CREATE EXTENSION pg_stat_statements"]
    return None, missing


def top_statement_rows(conn, schema: str, limit: int) -> list[tuple[str, int, float, float]]:
    """Return (query, calls, total ms, mean ms) of this database's costliest statements in total, costliest first."""
    return conn.execute(
        f"""
        SELECT query, calls, total_exec_time, mean_exec_time FROM {schema}.pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND query NOT LIKE '/* dbops insights */%%' AND query NOT LIKE '%%pg_stat_statements%%'
        ORDER BY total_exec_time DESC LIMIT %s
        """,  # noqa: S608 - the extension's schema, read from the catalog
        [limit],
    ).fetchall()

"""Maintenance connections outside the pool, and the tables and row counts a backup describes."""

from __future__ import annotations

import contextlib

from psycopg import sql

from dbops.database.pool import direct_connection
from dbops.database.rows import one_row


@contextlib.contextmanager
def maintenance_connection(alias: str, dbname: str | None = None):
    """Yield an autocommit connection outside the pool with no statement timeout (long maintenance work)."""
    with direct_connection(alias, timeout=10, statement_timeout=0, dbname=dbname) as conn:
        yield conn


def user_tables(conn) -> list[tuple[str, str]]:
    """Return (schema, table) of every ordinary or partitioned table outside the system schemas."""
    return conn.execute(
        """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
        ORDER BY 1, 2
        """
    ).fetchall()


def count_rows(conn) -> dict[str, int]:
    """Count the rows of every user table, keyed "schema.table"."""
    counts = {}
    for schema, table in user_tables(conn):
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
        counts[f"{schema}.{table}"] = one_row(conn.execute(query))[0]
    return counts

"""What the backup tests share: a backup folder per test, and hashes of every table's content."""

from __future__ import annotations

import psycopg
from psycopg import sql

from dbops.backups import logical as backups
from tests.conftest import test_database_connection

HISTORY_TABLES = {"public.dbops_backuprecord", "public.dbops_restorerecord", "public.dbops_migrationrun"}


def direct() -> psycopg.Connection:
    return test_database_connection()


def content_hashes() -> dict[str, str]:
    """Hash every table's ordered content, except dbops' own history (which a restore keeps)."""
    with direct() as conn:
        tables = backups.user_tables(conn)
        result = {}
        for schema, table in tables:
            name = f"{schema}.{table}"
            if name in HISTORY_TABLES:
                continue
            query = sql.SQL("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t")
            result[name] = conn.execute(query.format(sql.Identifier(schema, table))).fetchone()[0]
        return result

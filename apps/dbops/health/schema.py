"""Selectors: schema problems the planner or the next migration will pay for."""

from __future__ import annotations

from dbops.database.pool import probe_connection
from dbops.migrations_safety.status import pending_migrations

TABLES_WITHOUT_PRIMARY_KEY = """
SELECT n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
ORDER BY 1
"""

# A foreign key is covered when some index starts with exactly its columns (in any order).
FOREIGN_KEYS_WITHOUT_INDEX = """
SELECT k.conrelid::regclass::text, k.conname
FROM pg_constraint k
WHERE k.contype = 'f'
  AND NOT EXISTS (
    SELECT 1 FROM pg_index i
    WHERE i.indrelid = k.conrelid
      AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(k.conkey)] @> k.conkey
      AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(k.conkey)] <@ k.conkey
  )
ORDER BY 1, 2
"""

INVALID_INDEXES = "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid ORDER BY 1"


def schema_report(alias: str, *, timeout: float) -> dict:
    """List tables without a primary key, foreign keys without an index, invalid indexes, pending migrations."""
    with probe_connection(alias, timeout) as conn:
        no_pk = [row[0] for row in conn.execute(TABLES_WITHOUT_PRIMARY_KEY)]
        fks = [{"table": t, "constraint": c} for t, c in conn.execute(FOREIGN_KEYS_WITHOUT_INDEX)]
        invalid = [row[0] for row in conn.execute(INVALID_INDEXES)]
    return {
        "tables_without_primary_key": no_pk,
        "foreign_keys_without_index": fks,
        "invalid_indexes": invalid,
        "pending_migrations": [f"{app}.{name}" for app, name in pending_migrations(alias, timeout=timeout)],
    }

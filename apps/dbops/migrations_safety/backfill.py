"""A batched backfill for rewritten migrations: rows get their value a few thousand at a time.

A migration that rewrites "add a column with a volatile default" runs this in an `atomic = False` migration, so
every batch commits on its own: no long transaction, no row locks held across the table. Migration files refer
to it by name (`functools.partial(backfill_in_batches, ...)`), so keep dbops installed while they exist.
"""

from __future__ import annotations

BATCH_ROWS = 5000


def backfill_in_batches(apps, schema_editor, *, table: str, column: str, value_sql: str, batch: int = BATCH_ROWS):
    """Set `column` to `value_sql` where it is NULL, `batch` rows per statement, until none is left."""
    quote = schema_editor.connection.ops.quote_name
    statement = (
        f"UPDATE {quote(table)} SET {quote(column)} = {value_sql} WHERE ctid = ANY (ARRAY("  # noqa: S608
        f"SELECT ctid FROM {quote(table)} WHERE {quote(column)} IS NULL LIMIT {int(batch)}))"
    )
    while True:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(statement)
            if cursor.rowcount == 0:
                return

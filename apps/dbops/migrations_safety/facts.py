"""Live facts the migration analyzer grades against: table sizes, proven NOT NULL checks, volatile functions.

Read in three catalog queries for the whole analysis, whatever the number of migrations: the analyzer's
cost stays linear in the migrations, not in round trips.
"""

from __future__ import annotations

import dataclasses
import re

from dbops.database.pool import probe_connection
from dbops.database.rows import one_row

# pg_get_constraintdef renders a NOT NULL check as CHECK ((col IS NOT NULL)); the column may be quoted.
_NOT_NULL_CHECK = re.compile(r'^CHECK \(\(("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*) IS NOT NULL\)\)$')


@dataclasses.dataclass(frozen=True)
class TableFacts:
    """Size of one table as PostgreSQL estimates it (`reltuples` is -1 until the first ANALYZE)."""

    name: str
    estimated_rows: int | None
    size_bytes: int

    def as_dict(self) -> dict:
        return {"table": self.name, "estimated_rows": self.estimated_rows, "size_bytes": self.size_bytes}


@dataclasses.dataclass(frozen=True)
class LiveFacts:
    """What the database says about the tables a plan touches."""

    server_version: str
    tables: dict[str, TableFacts]
    validated_not_null: frozenset[tuple[str, str]]
    volatile_functions: frozenset[str]
    index_tables: dict[str, str] = dataclasses.field(default_factory=dict)

    def table(self, name: str | None) -> TableFacts | None:
        return self.tables.get(name) if name else None

    def index_table(self, index: str) -> str | None:
        """Return the table an index (as raw SQL names it, schema-qualified or not) belongs to."""
        return self.index_tables.get(index) or self.index_tables.get(index.rpartition(".")[2])


def _unquote(identifier: str) -> str:
    return identifier[1:-1].replace('""', '"') if identifier.startswith('"') else identifier


def load_facts(alias: str = "default", *, timeout: float = 10.0) -> LiveFacts:
    """Read table sizes, validated NOT NULL checks and the volatile function names of `alias`."""
    with probe_connection(alias, timeout) as conn:
        version = one_row(conn.execute("SHOW server_version"))[0]
        tables = {}
        for schema, name, visible, reltuples, size, empty in conn.execute(
            """
            SELECT n.nspname, c.relname, pg_table_is_visible(c.oid), c.reltuples::bigint,
                   pg_total_relation_size(c.oid), pg_relation_size(c.oid) = 0
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'm')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
            """
        ):
            # The statistics' estimate when they count rows; never analyzed (-1): unknown, unless the heap is empty.
            # An empty heap with a positive estimate (truncated since, or statistics restored) keeps the estimate:
            # overstating a size costs a warning, understating it lets a table lock through.
            rows = reltuples if reltuples > 0 else (0 if empty or reltuples == 0 else None)
            # Raw SQL may name a table with its schema; Django's models name it as the search path finds it.
            tables[f"{schema}.{name}"] = TableFacts(name=f"{schema}.{name}", estimated_rows=rows, size_bytes=size)
            if visible:
                tables[name] = TableFacts(name=name, estimated_rows=rows, size_bytes=size)
        not_null = set()
        for table, definition in conn.execute(
            """
            SELECT rel.relname, pg_get_constraintdef(con.oid)
            FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
            WHERE con.contype = 'c' AND con.convalidated AND pg_table_is_visible(rel.oid)
            """
        ):
            if match := _NOT_NULL_CHECK.match(definition):
                not_null.add((table, _unquote(match.group(1))))
        volatile = {
            name for (name,) in conn.execute("SELECT DISTINCT lower(proname) FROM pg_proc WHERE provolatile = 'v'")
        }
        index_tables = dict(
            conn.execute(
                """
                SELECT ci.relname, ct.relname FROM pg_index i
                JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid
                WHERE pg_table_is_visible(ct.oid)
                """
            ).fetchall()
        )
    return LiveFacts(
        server_version=version,
        tables=tables,
        validated_not_null=frozenset(not_null),
        volatile_functions=frozenset(volatile),
        index_tables=index_tables,
    )

"""I002's fix: an integer key widened to bigint, as Django migrations sized to the table.

A small table (and small referencing tables: under MIGRATION_SAFETY_WARN_ROWS) gets one `AlterField` to
`BigAutoField`: Django's schema editor rewrites the key and every foreign key column to it, quickly at that size.
A big one gets the plan that never rewrites the table under a long lock:

1. a nullable `bigint` column beside the key (a catalog change) and a trigger copying the key into it on every
   insert and update;
2. the existing rows copied in batches of `BATCH_ROWS`, each batch its own short transaction (`atomic = False`);
3. a unique index on the new column built CONCURRENTLY, and its NOT NULL proven by a CHECK added NOT VALID and
   then validated (no write is blocked while it scans);
4. the swap, in one short transaction with a lock timeout: the referencing foreign keys and the old primary key
   dropped, the new column made NOT NULL (the validated CHECK spares the scan), the primary key built from the
   unique index, the key's identity (or serial sequence) moved over with its last value, the columns renamed and
   the old one dropped, the foreign keys added back NOT VALID; Django's state gets the `BigAutoField`;
5. the foreign keys validated (a scan under a lock that lets writes through).

The referencing columns stay `integer` (PostgreSQL compares int4 with int8): each needs the same widening before
the key passes 2,147,483,647; the note says which. A key with other indexes on it is not planned (dropping the
old column would drop them): the note says so.
"""

from __future__ import annotations

import dataclasses
import functools

from django.db import models
from django.db.migrations import operations

BATCH_ROWS = 10_000
AUTO_FIELDS = ("AutoField", "SmallAutoField")


@dataclasses.dataclass(frozen=True)
class Step:
    slug: str
    operations: list
    atomic: bool


def backfill_in_batches(apps, schema_editor, *, table: str, source: str, target: str, batch: int = BATCH_ROWS):
    """Copy `source` into `target` for the rows that lack it, `batch` keys at a time, each batch committed apart.

    Batches follow the keys themselves (through the key's index), so a sparse key range costs nothing extra.
    """
    quote = schema_editor.connection.ops.quote_name
    qualified = ".".join(quote(part) for part in table.split("."))
    source, target = quote(source), quote(target)
    upper_bound = (
        f"SELECT max({source}) FROM (SELECT {source} FROM {qualified} "  # noqa: S608 - quoted names
        f"WHERE %s::bigint IS NULL OR {source} > %s ORDER BY {source} LIMIT %s) batch"
    )
    copy = (
        f"UPDATE {qualified} SET {target} = {source} "  # noqa: S608 - quoted names
        f"WHERE (%s::bigint IS NULL OR {source} > %s) AND {source} <= %s AND {target} IS NULL"
    )
    done = None
    with schema_editor.connection.cursor() as cursor:
        while True:
            cursor.execute(upper_bound, [done, done, batch])
            (upper,) = cursor.fetchone()
            if upper is None:
                return
            cursor.execute(copy, [done, done, upper])
            done = upper


def _big_field(field: models.Field) -> models.BigAutoField:
    _, _, args, kwargs = field.deconstruct()
    return models.BigAutoField(*args, **kwargs)


def one_step(model_name: str, field_name: str, field: models.Field) -> list[Step]:
    return [Step(f"{field_name}_bigint", [operations.AlterField(model_name, field_name, _big_field(field))], True)]


def plan(model_name: str, field_name: str, field: models.Field, detail: dict, quote) -> list[Step]:
    """Return the five steps of a big table's key widening (module docstring)."""
    key = detail["key"]
    table, column = detail["table"], detail["column"]
    bare = table.rpartition(".")[2]
    qualified = ".".join(quote(part) for part in table.split("."))
    new, old = f"{column}_bigint", f"{column}_integer"
    function = quote(f"dbops_widen_{bare}"[:63])
    trigger = quote(f"dbops_widen_{bare}"[:63])
    unique = quote(f"{bare}_{new}_uniq"[:63])
    not_null = quote(f"{bare}_{new}_not_null"[:63])
    col, new_col, old_col = quote(column), quote(new), quote(old)
    primary_key = quote(key["primary_key"] or f"{bare}_pkey")
    references = key["referenced_by"]

    add = operations.RunSQL(
        [
            f"ALTER TABLE {qualified} ADD COLUMN {new_col} bigint",
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN NEW.{new_col} := NEW.{col}; RETURN NEW; END $$",
            f"CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE ON {qualified} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        ],
        reverse_sql=[
            f"DROP TRIGGER IF EXISTS {trigger} ON {qualified}",
            f"DROP FUNCTION IF EXISTS {function}()",
            f"ALTER TABLE {qualified} DROP COLUMN IF EXISTS {new_col}",
        ],
    )
    backfill = operations.RunPython(
        functools.partial(backfill_in_batches, table=table, source=column, target=new),
        reverse_code=operations.RunPython.noop,
    )
    prove = operations.RunSQL(
        [
            f"CREATE UNIQUE INDEX CONCURRENTLY {unique} ON {qualified} ({new_col})",
            f"ALTER TABLE {qualified} ADD CONSTRAINT {not_null} CHECK ({new_col} IS NOT NULL) NOT VALID",
            f"ALTER TABLE {qualified} VALIDATE CONSTRAINT {not_null}",
        ],
        reverse_sql=[
            f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {not_null}",
            f"DROP INDEX CONCURRENTLY IF EXISTS {unique}",
        ],
    )
    sequence = quote_table(detail["sequence"], quote)
    if key["identity"]:
        release = f"ALTER TABLE {qualified} ALTER COLUMN {col} DROP IDENTITY;"
        generate = (
            f"ALTER TABLE {qualified} ALTER COLUMN {col} ADD GENERATED BY DEFAULT AS IDENTITY;\n"  # noqa: S608 - quoted catalog names
            f"  PERFORM setval(pg_get_serial_sequence({_literal(qualified)}, {_literal(column)}), "
            f"greatest(last_id, (SELECT max({col}) FROM {qualified})));"
        )
    else:
        release = (
            f"ALTER TABLE {qualified} ALTER COLUMN {col} DROP DEFAULT;\n"
            f"  ALTER SEQUENCE {sequence} AS bigint OWNED BY {qualified}.{new_col};"
        )
        generate = f"ALTER TABLE {qualified} ALTER COLUMN {col} SET DEFAULT nextval({_literal(sequence)});"
    drops = "".join(
        f"  ALTER TABLE {quote_table(ref['table'], quote)} DROP CONSTRAINT {quote(ref['constraint'])};\n"
        for ref in references
    )
    adds = "".join(
        f"  ALTER TABLE {quote_table(ref['table'], quote)} ADD CONSTRAINT {quote(ref['constraint'])} "
        f"{ref['definition']} NOT VALID;\n"
        for ref in references
    )
    swap_sql = (
        "DO $$\nDECLARE last_id bigint;\nBEGIN\n"  # noqa: S608 - every name quoted, read from the catalog
        "  SET LOCAL lock_timeout = '5s';\n"
        f"  LOCK TABLE {qualified} IN ACCESS EXCLUSIVE MODE;\n"
        f"  SELECT last_value INTO last_id FROM {sequence};\n"
        f"{drops}"
        f"  ALTER TABLE {qualified} DROP CONSTRAINT {primary_key};\n"
        f"  {release}\n"
        f"  DROP TRIGGER {trigger} ON {qualified};\n"
        f"  DROP FUNCTION {function}();\n"
        f"  ALTER TABLE {qualified} ALTER COLUMN {new_col} SET NOT NULL;\n"
        f"  ALTER TABLE {qualified} DROP CONSTRAINT {not_null};\n"
        f"  ALTER TABLE {qualified} ADD CONSTRAINT {primary_key} PRIMARY KEY USING INDEX {unique};\n"
        f"  ALTER TABLE {qualified} RENAME COLUMN {col} TO {old_col};\n"
        f"  ALTER TABLE {qualified} RENAME COLUMN {new_col} TO {col};\n"
        f"  ALTER TABLE {qualified} DROP COLUMN {old_col};\n"
        f"  {generate}\n"
        f"{adds}"
        "END $$"
    )
    swap = operations.SeparateDatabaseAndState(
        database_operations=[operations.RunSQL(swap_sql)],
        state_operations=[operations.AlterField(model_name, field_name, _big_field(field))],
    )
    steps = [
        Step(f"{column}_bigint_1_add", [add], True),
        Step(f"{column}_bigint_2_backfill", [backfill], False),
        Step(f"{column}_bigint_3_prove", [prove], False),
        Step(f"{column}_bigint_4_swap", [swap], True),
    ]
    if references:
        validate = operations.RunSQL(
            [
                f"ALTER TABLE {quote_table(ref['table'], quote)} VALIDATE CONSTRAINT {quote(ref['constraint'])}"
                for ref in references
            ],
            reverse_sql=operations.RunSQL.noop,  # an unvalidated foreign key is no less of one
        )
        steps.append(Step(f"{column}_bigint_5_validate", [validate], True))
    return steps


def quote_table(table: str, quote) -> str:
    return ".".join(quote(part) for part in table.split("."))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def widening(insight, model_state, field_name: str, connection, small_rows: int) -> tuple[list[Step], str] | None:
    """Return the steps and the models.py note of an I002 finding on an AutoField, or None when there is none."""
    detail = insight.detail
    field = model_state.fields.get(field_name)
    if "key" not in detail or field is None or type(field).__name__ not in AUTO_FIELDS:
        return None
    key = detail["key"]
    model_name = model_state.name.lower()
    note = f"in models.py make {model_state.name}.{field_name} a models.BigAutoField(primary_key=True)"
    small = key["rows"] < small_rows and all(ref["rows"] < small_rows for ref in key["referenced_by"])
    if small:
        return one_step(model_name, field_name, field), f"{note}; small tables: one AlterField rewrites them"
    if key["other_indexes"]:
        return [], f"not planned: {', '.join(key['other_indexes'])} index the key too and would be dropped with it"
    steps = plan(model_name, field_name, field, detail, connection.ops.quote_name)
    columns = [f"{ref['table']}.{', '.join(ref['columns'])}" for ref in key["referenced_by"]]
    if columns:
        note += f"; still integer, to widen the same way before the key passes 2,147,483,647: {'; '.join(columns)}"
    return steps, note

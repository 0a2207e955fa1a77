"""The fix of an index insight written as a Django migration on the right app, safe by dbops' own rules.

- I003 INVALID index: dropped and built again CONCURRENTLY (`atomic = False`);
- I004/I005 duplicate or unused index: dropped CONCURRENTLY: `RemoveIndexConcurrently` when it is one of the
  model's `Meta.indexes` (delete it there too), state and database apart when it is a field's `db_index` (set
  `db_index=False` on the field), raw SQL when Django does not know it;
- I006 foreign key without an index: built CONCURRENTLY; when the field says `db_index=False`, Django's state is
  changed with it (set `db_index=True` on the field) so the next `makemigrations` agrees;
- I002 sequence near its maximum on an AutoField: the key widened to bigint, in one step or five (`widening`);
- I011 advised index: `AddIndexConcurrently` of a `models.Index` on the fields (add it to `Meta.indexes`), raw SQL
  when a column is not a field.

Only fixes on a Django model's table are written; each migration depends on the app's newest migration and the
next one of the same app on it. Nothing is applied: the files go into a folder for review.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import connections, models
from django.db.migrations import Migration, operations
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.writer import MigrationWriter

from dbops.conf import get_config
from dbops.insights.models import model_of
from dbops.insights.service import Insight
from dbops.insights.widening import Step, widening

CODES = ("I002", "I003", "I004", "I005", "I006", "I011")


@dataclasses.dataclass(frozen=True)
class WrittenFix:
    code: str
    object: str
    app_label: str
    path: Path | None  # None: not planned (the note says why)
    note: str  # what to change in models.py, or why nothing needs to


def _quote(name: str, connection) -> str:
    return ".".join(connection.ops.quote_name(part) for part in name.split("."))


def _operations(insight: Insight, state, connection) -> tuple[list, str] | None:
    """Return the operations of the fix and the note for models.py; None when this insight has no Django model."""
    if not insight.model:
        return None
    app_label, model_name, *field = insight.model.split(".")
    model = state.models.get((app_label, model_name.lower()))
    if model is None:
        return None
    detail = insight.detail
    if insight.code == "I011":
        return _advised_index(insight, model, connection)
    if insight.code == "I006":
        column_list = ", ".join(connection.ops.quote_name(c) for c in detail["columns"])
        name = detail["index_name"]
        build = operations.RunSQL(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {connection.ops.quote_name(name)} ON "
            f"{_quote(detail['table'], connection)} ({column_list})",
            reverse_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {connection.ops.quote_name(name)}",
        )
        current = model.fields.get(field[0]) if field else None
        if current is not None and not current.db_index:
            wanted = current.clone()
            wanted.db_index = True
            alter = operations.AlterField(model_name.lower(), field[0], wanted)
            op = operations.SeparateDatabaseAndState(database_operations=[build], state_operations=[alter])
            return [op], f"in models.py set db_index=True on {model.name}.{field[0]}"
        return [build], "nothing in models.py: Django already expects this index, the database lacked it"
    index = detail["index"]  # schema-qualified
    bare = index.rpartition(".")[2]
    drop = f"DROP INDEX CONCURRENTLY IF EXISTS {_quote(index, connection)}"
    if insight.code == "I003":
        rebuild = operations.RunSQL(detail["rebuild"], reverse_sql=drop)
        return [operations.RunSQL(drop, reverse_sql=operations.RunSQL.noop), rebuild], (
            "nothing in models.py: the same index, built again"
        )
    named = [i for i in model.options.get("indexes", []) if i.name == bare]
    if named:
        note = f"in models.py delete models.Index(name={bare!r}) from {model.name}.Meta.indexes"
        return [RemoveIndexConcurrently(model_name.lower(), bare)], note
    restore = detail.get("definition", "").replace(" INDEX ", " INDEX CONCURRENTLY ", 1)
    reverse = restore or operations.RunSQL.noop
    current = model.fields.get(field[0]) if field else None
    if current is not None and current.db_index and not current.unique:
        unindexed = current.clone()
        unindexed.db_index = False
        op = operations.SeparateDatabaseAndState(
            database_operations=[operations.RunSQL(drop, reverse_sql=reverse)],
            state_operations=[operations.AlterField(model_name.lower(), field[0], unindexed)],
        )
        return [op], f"in models.py set db_index=False on {model.name}.{field[0]}"
    return [operations.RunSQL(drop, reverse_sql=reverse)], "nothing in models.py: Django does not know this index"


def _advised_index(insight: Insight, model, connection) -> tuple[list, str]:
    detail = insight.detail
    name, columns = detail["index_name"], detail["columns"]
    refs = [model_of(detail["table"], column) for column in columns]
    fields = [ref.field for ref in refs if ref is not None and ref.field]
    if len(fields) == len(columns):
        note = f"in models.py add models.Index(fields={fields!r}, name={name!r}) to {model.name}.Meta.indexes"
        return [AddIndexConcurrently(model.name.lower(), models.Index(fields=fields, name=name))], note
    build = operations.RunSQL(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {connection.ops.quote_name(name)} ON "
        f"{_quote(detail['table'], connection)} ({', '.join(connection.ops.quote_name(c) for c in columns)})",
        reverse_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {connection.ops.quote_name(name)}",
    )
    return [build], "nothing in models.py: a column of this index is not a model field"


def _steps(insight: Insight, state, connection) -> tuple[list[Step], str] | None:
    """Return the migrations (steps) of one insight's fix and the note for models.py; None: nothing to write."""
    if insight.code == "I002":
        if not insight.model or insight.model.count(".") != 2:
            return None
        app_label, model_name, field_name = insight.model.split(".")
        model = state.models.get((app_label, model_name.lower()))
        small_rows = get_config().migrations.warn_rows
        return widening(insight, model, field_name, connection, small_rows) if model is not None else None
    built = _operations(insight, state, connection)
    if built is None:
        return None
    ops, note = built
    slug = insight.detail["index_name"] if insight.code == "I011" else insight.object.split()[-1]
    return [Step(slug.rpartition(".")[2][:40], ops, atomic=False)], note


def _source(migration: Migration, atomic: bool) -> str:
    source = MigrationWriter(migration, include_header=False).as_string()
    if atomic:
        return source
    return source.replace(
        "class Migration(migrations.Migration):\n",
        "class Migration(migrations.Migration):\n    # CONCURRENTLY and batches cannot run inside one transaction.\n"
        "    atomic = False\n",
        1,
    )


def write_fix_migrations(insights: list[Insight], directory: Path, alias: str = "default") -> list[WrittenFix]:
    """Write the migrations of each fixable insight under `directory/<app_label>/`; return what was written.

    An insight whose fix is not planned (say, a key other indexes use) is returned with no path and its reason.
    """
    connection = connections[alias]
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    state = loader.project_state()
    leaves: dict[str, tuple[str, str]] = {}
    written = []
    for insight in insights:
        if insight.code not in CODES:
            continue
        built = _steps(insight, state, connection)
        if built is None:
            continue
        steps, note = built
        app_label = str(insight.model).split(".")[0]
        if not steps:
            written.append(WrittenFix(insight.code, insight.object, app_label, None, note))
        for step in steps:
            previous = leaves.get(app_label) or max(loader.graph.leaf_nodes(app_label), default=None)
            number = int(previous[1].split("_")[0]) + 1 if previous and previous[1][:4].isdigit() else 1
            name = f"{number:04d}_dbops_{insight.code.lower()}_{step.slug}"
            attributes = {"operations": step.operations, "dependencies": [previous] if previous else []}
            migration = type("Migration", (Migration,), attributes)(name, app_label)
            header = (
                f"# Written by dbops (manage.py db_insights --write-migrations) for {insight.code} {insight.object}.\n"
            )
            path = directory / app_label / f"{name}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{header}# {note}\n\n{_source(migration, step.atomic)}")
            leaves[app_label] = (app_label, name)
            written.append(WrittenFix(insight.code, insight.object, app_label, path, note))
    return written

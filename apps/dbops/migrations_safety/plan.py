"""What a migration run would do, known before it runs: the plan, its steps, and what each step destroys."""

from __future__ import annotations

import dataclasses

from django.db import connections
from django.db.backends.utils import truncate_name
from django.db.migrations.exceptions import AmbiguityError
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.operations import AddField, CreateModel, RemoveField
from django.db.models import NOT_PROVIDED
from psycopg import sql

from dbops.database.pool import direct_connection
from dbops.database.rows import one_row
from dbops.exceptions import MigrationSelectionError
from dbops.migrations_safety.context import describe_size, table_name
from dbops.migrations_safety.dispatch import irreversible_operations
from dbops.migrations_safety.facts import load_facts


@dataclasses.dataclass(frozen=True)
class PlanStep:
    """One migration to apply or unapply, with what unapplying it destroys."""

    migration: str
    backwards: bool
    atomic: bool
    irreversible: tuple[str, ...] = ()
    destroys: tuple[str, ...] = ()
    will_fail: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "migration": self.migration,
            "action": "unapply" if self.backwards else "apply",
            "atomic": self.atomic,
            "irreversible": list(self.irreversible),
            "destroys": list(self.destroys),
            "will_fail": list(self.will_fail),
        }


def migration_plan(alias: str, app_label: str | None, migration_name: str | None) -> tuple[MigrationExecutor, list]:
    executor = MigrationExecutor(connections[alias])
    loader = executor.loader
    if app_label is None:
        targets = loader.graph.leaf_nodes()
    elif app_label not in loader.migrated_apps:
        raise MigrationSelectionError(f"app {app_label!r} has no migrations (is it in INSTALLED_APPS?)")
    elif migration_name is None:
        targets = [key for key in loader.graph.leaf_nodes() if key[0] == app_label]
    elif migration_name == "zero":
        targets = [(app_label, None)]
    else:
        try:
            migration = loader.get_migration_by_prefix(app_label, migration_name)
        except (AmbiguityError, KeyError) as exc:
            raise MigrationSelectionError(f"{app_label} has no single migration matching {migration_name!r}") from exc
        targets = [(app_label, migration.name)]
    return executor, executor.migration_plan(targets)


def m2m_table(field, name: str, model_table: str, connection) -> str | None:
    """Return the join table Django creates for a many-to-many field (None when it has its own through model)."""
    if field.remote_field.through is not None:
        return None
    return field.db_table or truncate_name(f"{model_table}_{name}", connection.ops.max_name_length())


def destroys(executor: MigrationExecutor, migration, facts, connection) -> tuple[str, ...]:
    """Describe the data unapplying `migration` drops: its new tables, columns and join tables, with live sizes."""
    notes = []
    state = None
    for op in migration.operations:
        if isinstance(op, CreateModel):
            table = table_name(migration.app_label, op.name_lower, op.options, connection)
            size = facts.table(table)
        elif isinstance(op, AddField):
            state = state or executor.loader.project_state((migration.app_label, migration.name), at_end=True)
            model = state.models[(migration.app_label, op.model_name_lower)]
            model_table = table_name(migration.app_label, model.name_lower, model.options, connection)
            if op.field.many_to_many:
                join = m2m_table(op.field, op.name, model_table, connection)
                if join is None:
                    continue  # an explicit through model is its own CreateModel
                table, size = join, facts.table(join)
            else:
                table, size = f"{model_table}.{op.name}", facts.table(model_table)
        else:
            continue
        notes.append(f"drops {table}" + (f" ({describe_size(size)})" if size else ""))
    return tuple(notes)


def has_rows(alias: str, table: str) -> bool:
    with direct_connection(alias, timeout=10) as conn:
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
        return one_row(conn.execute(query))[0]


def will_fail_backwards(executor: MigrationExecutor, migration, alias: str) -> tuple[str, ...]:
    """Predict the reverse steps PostgreSQL will refuse: a NOT NULL column without a default re-added to rows."""
    problems = []
    state = None
    connection = connections[alias]
    for op in migration.operations:
        if not isinstance(op, RemoveField):
            continue
        state = state or executor.loader.project_state((migration.app_label, migration.name), at_end=False)
        model = state.models[(migration.app_label, op.model_name_lower)]
        field = model.fields[op.name]
        if field.many_to_many or field.null or field.has_default() or field.db_default is not NOT_PROVIDED:
            continue
        table = table_name(migration.app_label, model.name_lower, model.options, connection)
        if has_rows(alias, table):
            problems.append(
                f"re-adds NOT NULL column {table}.{field.db_column or op.name} without a default to a table with rows: "
                "PostgreSQL refuses it (give the field a default or null=True in the migration first)"
            )
    return tuple(problems)


def plan_steps(executor: MigrationExecutor, plan: list, alias: str) -> list[PlanStep]:
    facts = load_facts(alias) if any(backwards for _, backwards in plan) else None
    steps = []
    for migration, backwards in plan:
        steps.append(
            PlanStep(
                migration=f"{migration.app_label}.{migration.name}",
                backwards=backwards,
                atomic=migration.atomic,
                irreversible=tuple(irreversible_operations(migration)) if backwards else (),
                destroys=destroys(executor, migration, facts, connections[alias]) if backwards else (),
                will_fail=will_fail_backwards(executor, migration, alias) if backwards else (),
            )
        )
    return steps

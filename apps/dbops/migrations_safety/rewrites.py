"""The safe form of a migration: each finding that has a mechanical fix, rewritten as Django migration code.

A pending migration becomes a few migrations `<name>_a`, `<name>_b`, ... that keep its order, plus one for a
later release:

- in a transaction: what was safe already, constraints added NOT VALID, NOT NULL columns given their constant
  default in the database (`db_default`), columns and tables removed from Django's state only, a column with a
  volatile default added without it (the default then set for new rows only);
- outside one (`atomic = False`): indexes built and dropped CONCURRENTLY, unique constraints attached to an
  index built CONCURRENTLY (`USING INDEX`), the existing rows of such a column filled in committed batches;
- last, in a transaction: VALIDATE CONSTRAINT (a scan that blocks no writes), then SET NOT NULL on a validated
  check (no scan) and the check dropped;
- `later/<name>_drop`: the DROP COLUMN / DROP TABLE, for the release after the code stopped using them.

The last one deployed now `replaces` the original, so migrations that depend on the original keep working.
Nothing is written over the original: `write_rewrite` writes into a review folder. Findings without a mechanical
form (a type change, a rename, a data migration) are listed as left as they are.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import re
from pathlib import Path

from django.conf import SettingsReference
from django.contrib.postgres.operations import (
    AddConstraintNotValid,
    AddIndexConcurrently,
    RemoveIndexConcurrently,
    ValidateConstraint,
)
from django.db import connections, models
from django.db.migrations import Migration, operations
from django.db.migrations.exceptions import AmbiguityError
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState
from django.db.migrations.writer import MigrationWriter, OperationWriter
from django.utils import timezone

from dbops.exceptions import MigrationSelectionError
from dbops.migrations_safety.analysis import MigrationReport, SafetyReport, analyze, full_plan
from dbops.migrations_safety.backfill import BATCH_ROWS, backfill_in_batches
from dbops.migrations_safety.catalog import RULES, Severity
from dbops.migrations_safety.context import table_name
from dbops.migrations_safety.emitted import small_state

# Codes whose finding has a mechanical safe form here.
REWRITABLE = frozenset({"M001", "M002", "M004", "M005", "M006", "M007", "M009", "M010", "M011", "M013"})


@dataclasses.dataclass
class Rewrite:
    """The safe form of one migration: migrations to deploy now (in order) and one for a later release."""

    app_label: str
    original: str
    now: list[Migration]
    later: Migration | None
    changes: list[str]
    left: list[str]

    def files(self) -> list[tuple[str, str]]:
        """Return (relative path, source) of every migration file the rewrite consists of."""
        rendered = [(f"{m.name}.py", render(m, self)) for m in self.now]
        if self.later is not None:
            rendered.append((f"later/{self.later.name}.py", render(self.later, self)))
        return rendered

    def as_dict(self) -> dict:
        return {
            "migration": f"{self.app_label}.{self.original}",
            "changes": self.changes,
            "left_as_is": self.left,
            "files": [{"path": path, "source": source} for path, source in self.files()],
        }


# Django's writer refers to what a migration module defines by its dotted path (not importable: "0009_x") and asks
# for the code to be copied by hand; the rewrite copies it.
_MANUAL_COPY = re.compile(r"\n# Functions from the following migrations need manual copying\.\n(?:#.*\n)+")


def _module_preamble(module_name: str) -> str:
    """Return a migration module's code without its Migration class: the imports, functions and classes it uses."""
    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    lines = source.splitlines(keepends=True)
    dropped: set[int] = set()
    for node in ast.parse(source).body:
        is_migration = isinstance(node, ast.ClassDef) and node.name == "Migration"
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if is_migration or is_future:
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            dropped.update(range(first - 1, node.end_lineno or node.lineno))
    kept = "".join(line for number, line in enumerate(lines) if number not in dropped).strip()
    return f"# --- copied from {module_name}: what its operations use\n{kept}\n# --- end of the copy\n"


def _inline_migration_modules(source: str) -> str:
    """Replace references into migration modules (`app.migrations.0009_x.name`) by a copy of their code."""
    listed = _MANUAL_COPY.search(source)
    named = re.findall(r"^# (\S+)$", listed.group(0), re.MULTILINE) if listed else []
    imported = re.findall(r"^import (\S+)$", source, re.MULTILINE)
    modules = [
        name for name in dict.fromkeys([*named, *imported]) if not all(p.isidentifier() for p in name.split("."))
    ]
    if not modules:
        return source
    source = _MANUAL_COPY.sub("\n", source)
    preambles = []
    for name in modules:
        source = source.replace(f"import {name}\n", "").replace(f"{name}.", "")
        preambles.append(_module_preamble(name))
    head, separator, tail = source.partition("\nclass Migration(")
    return f"{head.rstrip()}\n\n{''.join(preambles)}\n{separator}{tail}"


def _swappable_references(migration: Migration) -> dict[str, str]:
    """Return setting name -> model of the swappable relations (`to=settings.X`) the migration's fields use."""
    found = {}
    stack = list(migration.operations)
    while stack:
        op = stack.pop()
        stack += getattr(op, "database_operations", []) + getattr(op, "state_operations", [])
        fields = [op.field] if hasattr(op, "field") else [field for _, field in getattr(op, "fields", ())]
        for field in fields:
            # deconstruct() names the setting of a swappable target (the global app registry knows which).
            target = field.deconstruct()[3].get("to") if getattr(field, "remote_field", None) else None
            if isinstance(target, SettingsReference):
                found[target.setting_name] = str(target)
    return found


def _settings_with_fallback(source: str, migration: Migration) -> str:
    """Keep `settings.X` for a swappable model, with the model it had as the fallback when the site leaves X unset.

    A package's own migrations read such a setting through the package's defaults (django-oauth-toolkit's
    OAUTH2_PROVIDER_APPLICATION_MODEL); Django's writer writes `settings.X`, which fails on a site that never set it.
    """
    for name, model in _swappable_references(migration).items():
        source = source.replace(f"to=settings.{name})", f"to=getattr(settings, {name!r}, {model!r}))")
        source = source.replace(f"to=settings.{name},", f"to=getattr(settings, {name!r}, {model!r}),")
    return source


def render(migration: Migration, rewrite: Rewrite) -> str:
    """Render `migration` as a migration file (Django's writer), with its atomic flag and where it came from."""
    source = MigrationWriter(migration, include_header=False).as_string()
    source = _settings_with_fallback(_inline_migration_modules(source), migration)
    header = (
        f"# Written by dbops (manage.py migration_rewrite) from {rewrite.app_label}.{rewrite.original} on "
        f"{timezone.now():%Y-%m-%d %H:%M} UTC: its safe form, for review.\n"
        + "".join(f"#   - {change}\n" for change in rewrite.changes)
    )
    if migration.atomic is False:
        source = source.replace(
            "class Migration(migrations.Migration):\n",
            "class Migration(migrations.Migration):\n    # CONCURRENTLY cannot run inside a transaction.\n"
            "    atomic = False\n",
            1,
        )
    return header + "\n" + source.lstrip()


def operations_code(migration: Migration) -> str:
    """Return the operations of `migration` as the Python a migration file holds (for reports)."""
    return "".join(OperationWriter(op, indentation=0).serialize()[0] + "\n" for op in migration.operations)


@dataclasses.dataclass
class _Parts:
    """Where the safe form of an operation goes.

    In its place (in a transaction or outside one); the validations after everything (SHARE UPDATE EXCLUSIVE: reads
    and writes go on); then what needs a brief ACCESS EXCLUSIVE lock on validated ground (SET NOT NULL), in a
    transaction of its own: a validation after it would scan while that lock is held; or in the later release.
    """

    atomic: list = dataclasses.field(default_factory=list)
    concurrent: list = dataclasses.field(default_factory=list)
    validate: list = dataclasses.field(default_factory=list)
    finish: list = dataclasses.field(default_factory=list)
    later: list = dataclasses.field(default_factory=list)
    handled: set = dataclasses.field(default_factory=set)  # the codes the safe form removes


def _quote(name: str, connection) -> str:
    return connection.ops.quote_name(name)


def _not_null_check_name(table: str, column: str) -> str:
    return f"{table}_{column}_not_null"[:63]


def _safe_form(op, state, app_label: str, codes: set[str], connection, parts: _Parts) -> str | None:
    """Put the safe form of `op` into `parts` and describe it; None when `op` stays as it is."""
    model_name = getattr(op, "model_name", None) or getattr(op, "name", "")
    model = state.models.get((app_label, str(model_name).lower()))
    table = table_name(app_label, model.name_lower, model.options, connection) if model else None

    if isinstance(op, operations.AddIndex) and codes & {"M005"}:
        parts.handled.add("M005")
        parts.concurrent.append(AddIndexConcurrently(op.model_name, op.index))
        return f"index {op.index.name}: built CONCURRENTLY in a non-atomic migration"
    if isinstance(op, AddIndexConcurrently | RemoveIndexConcurrently) and "M006" in codes:
        parts.handled.add("M006")
        parts.concurrent.append(op)
        return f"{type(op).__name__}: moved to a non-atomic migration"
    if isinstance(op, operations.RemoveIndex) and "M007" in codes:
        parts.handled.add("M007")
        parts.concurrent.append(RemoveIndexConcurrently(op.model_name, op.name))
        return f"index {op.name}: dropped CONCURRENTLY in a non-atomic migration"
    is_check = isinstance(op, operations.AddConstraint) and isinstance(op.constraint, models.CheckConstraint)
    if is_check and "M009" in codes:
        parts.atomic.append(AddConstraintNotValid(op.model_name, op.constraint))
        parts.handled.add("M009")
        parts.validate.append(ValidateConstraint(op.model_name, op.constraint.name))
        return f"check {op.constraint.name}: added NOT VALID, validated in a later migration (no write lock)"
    if isinstance(op, operations.AddConstraint) and "M010" in codes and _plain_unique(op.constraint) and model:
        columns = ", ".join(_quote(_column_of(model, f), connection) for f in op.constraint.fields)
        name = _quote(op.constraint.name, connection)
        build = operations.RunSQL(
            f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {_quote(table, connection)} ({columns})",
            reverse_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
        )
        attach = operations.RunSQL(
            f"ALTER TABLE {_quote(table, connection)} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}",
            reverse_sql=f"ALTER TABLE {_quote(table, connection)} DROP CONSTRAINT IF EXISTS {name}",
        )
        parts.handled.add("M010")
        parts.concurrent.append(
            operations.SeparateDatabaseAndState(database_operations=[build, attach], state_operations=[op])
        )
        return f"unique {op.constraint.name}: index built CONCURRENTLY, then attached with USING INDEX"
    if isinstance(op, operations.AlterField) and "M004" in codes and model:
        column = _column_of(model, op.name)
        described = (
            f"{table}.{column} NOT NULL: a CHECK (IS NOT NULL) added NOT VALID, validated later, then SET NOT NULL "
            "uses it (no scan) and the check is dropped"
        )
        value_sql = _null_backfill_sql(op, model, state, app_label, connection)
        if value_sql is not None:
            # Django's AlterField fills NULLs with the new default before SET NOT NULL: so does the safe form.
            backfill = functools.partial(backfill_in_batches, table=table, column=column, value_sql=value_sql)
            parts.concurrent.append(operations.RunPython(backfill, operations.RunPython.noop))
            described += f"; existing NULLs set to the default {value_sql} first, in batches of {BATCH_ROWS}"
        final: operations.base.Operation = op
        if _only_nullability_changes(model.fields.get(op.name), op.field):
            # Django's AlterField would drop and re-add (validate) a foreign key: only the NOT NULL changes here.
            quoted = f"ALTER TABLE {_quote(table, connection)} ALTER COLUMN {_quote(column, connection)}"
            final = operations.SeparateDatabaseAndState(
                state_operations=[op],
                database_operations=[operations.RunSQL(f"{quoted} SET NOT NULL", f"{quoted} DROP NOT NULL")],
            )
            described += " (SET NOT NULL alone: the column's constraints stay as they are)"
        parts.handled.add("M004")
        _not_null_through_check(op.model_name, op.name, table, column, final, parts)
        return described
    if isinstance(op, operations.AddField) and "M002" in codes and model:
        column = op.field.db_column or op.name
        value_sql = _db_default_sql(op, state, app_label, connection)
        _, _, args, kwargs = op.field.deconstruct()
        kwargs.pop("db_default", None)
        interim = op.field.__class__(*args, **{**kwargs, "null": True})
        quoted = f"{_quote(table, connection)} ALTER COLUMN {_quote(column, connection)}"
        parts.atomic += [
            operations.AddField(op.model_name, op.name, interim),
            # New rows get their value from now on; the existing ones are filled in batches next.
            operations.RunSQL(f"ALTER TABLE {quoted} SET DEFAULT {value_sql}", f"ALTER TABLE {quoted} DROP DEFAULT"),
        ]
        backfill = functools.partial(backfill_in_batches, table=table, column=column, value_sql=value_sql)
        parts.concurrent.append(operations.RunPython(backfill, operations.RunPython.noop))
        final = operations.AlterField(op.model_name, op.name, op.field)
        if op.field.null:
            parts.finish.append(final)
        else:
            _not_null_through_check(op.model_name, op.name, table, column, final, parts)
        parts.handled.add("M002")
        return (
            f"column {column} with a volatile default: added without it (no rewrite), the default set for new rows, "
            f"existing rows filled in batches of {BATCH_ROWS} (each committed), then the field as written"
        )
    if isinstance(op, operations.AddField) and "M001" in codes and _constant(op.field.default):
        name, path, args, kwargs = op.field.deconstruct()
        field = op.field.__class__(*args, **{**kwargs, "db_default": op.field.default})
        parts.handled.add("M001")
        parts.atomic.append(operations.AddField(op.model_name, op.name, field, preserve_default=op.preserve_default))
        written, _ = MigrationWriter.serialize(field)
        return (
            f"column {op.name}: its default {op.field.default!r} is given to the database too (db_default); write it "
            f"in models.py as well, or the next makemigrations drops it: {op.name} = {written}"
        )
    if isinstance(op, operations.RemoveField) and "M011" in codes and model and op.name in model.fields:
        field = model.fields[op.name]
        column = _column_of(model, op.name)
        column_type = field.db_type(connection) if not field.is_relation else "bigint"
        parts.atomic.append(operations.SeparateDatabaseAndState(state_operations=[op]))
        parts.later.append(
            operations.RunSQL(
                f"ALTER TABLE {_quote(table, connection)} DROP COLUMN IF EXISTS {_quote(column, connection)}",
                reverse_sql=f"ALTER TABLE {_quote(table, connection)} ADD COLUMN {_quote(column, connection)} "
                f"{column_type} NULL",
            )
        )
        parts.handled.add("M011")
        return f"column {table}.{column}: leaves Django's state now, dropped by the later-release migration"
    if isinstance(op, operations.DeleteModel) and "M013" in codes and table:
        parts.atomic.append(operations.SeparateDatabaseAndState(state_operations=[op]))
        parts.later.append(
            operations.RunSQL(f"DROP TABLE IF EXISTS {_quote(table, connection)}", reverse_sql=operations.RunSQL.noop)
        )
        parts.handled.add("M013")
        return f"table {table}: leaves Django's state now, dropped by the later-release migration"
    return None


def _not_null_through_check(model_name: str, name: str, table: str, column: str, alter, parts: _Parts) -> None:
    """NOT NULL without a scan under ACCESS EXCLUSIVE: a validated CHECK (col IS NOT NULL) first, dropped after."""
    check = models.CheckConstraint(
        condition=models.Q(**{f"{name}__isnull": False}), name=_not_null_check_name(table, column)
    )
    parts.atomic.append(AddConstraintNotValid(model_name, check))
    remove = operations.RemoveConstraint(model_name, check.name)
    parts.validate.append(ValidateConstraint(model_name, check.name))
    parts.finish += [alter, remove]


def _only_nullability_changes(old, new) -> bool:
    """Tell whether AlterField old -> new changes `null` and nothing else Django deconstructs."""
    if old is None:
        return False
    _, old_path, old_args, old_kwargs = old.deconstruct()
    _, new_path, new_args, new_kwargs = new.deconstruct()
    for kwargs in (old_kwargs, new_kwargs):
        kwargs.pop("null", None)
        for attribute in new.non_db_attrs:
            kwargs.pop(attribute, None)
    # A default only matters for filling NULLs (done before), the column keeps no DEFAULT either way.
    old_kwargs.pop("default", None)
    new_kwargs.pop("default", None)
    return (old_path, old_args, old_kwargs) == (new_path, new_args, new_kwargs)


def _null_backfill_sql(op, model, state, app_label: str, connection) -> str | None:
    """Return the SQL value Django's AlterField (null -> NOT NULL) first writes into NULL rows; None for none."""
    old = model.fields.get(op.name)
    if old is None or not old.null or not (op.field.has_default() or _has_db_default(op.field)):
        return None
    after = small_state(state, {(app_label, op.model_name_lower)})
    op.state_forwards(app_label, after)
    field = after.apps.get_model(app_label, op.model_name)._meta.get_field(op.name)
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        if _has_db_default(field):
            sql, params = editor.db_default_sql(field)
            return sql % tuple(editor.quote_value(p) for p in params) if params else sql
        value = editor.effective_default(field)
        return None if value is None else editor.quote_value(value)


def _has_db_default(field) -> bool:
    return getattr(field, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED


def _db_default_sql(op, state, app_label: str, connection) -> str:
    """Render the AddField's db_default as SQL (Django's schema editor, on the model as the field adds it)."""
    after = small_state(state, {(app_label, op.model_name_lower)})
    op.state_forwards(app_label, after)
    field = after.apps.get_model(app_label, op.model_name)._meta.get_field(op.name)
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        sql, params = editor.db_default_sql(field)
        return sql % tuple(editor.quote_value(p) for p in params) if params else sql


def _column_of(model, field_name: str) -> str:
    """Return the column of a field of a model state (a foreign key's is `<name>_id` unless db_column says)."""
    field = model.fields.get(field_name)
    if field is None:
        return field_name
    return field.db_column or (f"{field_name}_id" if field.is_relation else field_name)


def _plain_unique(constraint) -> bool:
    return (
        isinstance(constraint, models.UniqueConstraint)
        and bool(constraint.fields)
        and not constraint.condition
        and not constraint.expressions
        and not constraint.include
        and not constraint.opclasses
        and constraint.deferrable is None
        and getattr(constraint, "nulls_distinct", None) is None
    )


def _constant(value) -> bool:
    return value is not models.NOT_PROVIDED and isinstance(value, str | int | float | bool | type(None))


_OPERATION_NUMBER = re.compile(r"^#(\d+) ")


def rewrite_migration(
    app_label: str,
    name: str,
    *,
    alias: str = "default",
    report: MigrationReport | None = None,
    loader: MigrationLoader | None = None,
    state: ProjectState | None = None,
) -> Rewrite | None:
    """Return the `Rewrite` of pending migration `app_label.name`, or None when no finding has a safe form."""
    connection = connections[alias]
    loader = loader or MigrationLoader(connection, ignore_no_migrations=True)
    try:
        migration = loader.graph.nodes.get((app_label, name)) or loader.get_migration_by_prefix(app_label, name)
    except (AmbiguityError, KeyError) as exc:
        raise MigrationSelectionError(f"{app_label} has no single migration matching {name!r}") from exc
    key = (app_label, migration.name)
    if key in loader.applied_migrations:
        raise MigrationSelectionError(
            f"{app_label}.{migration.name} is applied already: only a pending one is rewritten"
        )
    if report is None:
        report = analyze(alias=alias, nodes=[key], loader=loader).migrations[0]
    codes_by_operation: dict[int, set[str]] = {}
    left = []
    for finding in report.findings:
        if finding.suppressed or finding.severity < Severity.WARN:
            continue
        number = int(_OPERATION_NUMBER.match(finding.operation).group(1)) if finding.operation.startswith("#") else 0
        if finding.code in REWRITABLE and number:
            codes_by_operation.setdefault(number, set()).add(finding.code)
        else:
            left.append(f"{finding.code} {finding.rule.title} ({finding.operation}): no mechanical safe form")
    if not codes_by_operation:
        return None
    state = state if state is not None else loader.project_state(key, at_end=False)
    # Consecutive runs of operations that need (or cannot have) a transaction, in their original order.
    segments: list[tuple[bool, list]] = []
    validations, finishes, later_ops, changes = [], [], [], []
    for number, op in enumerate(migration.operations, start=1):
        parts = _Parts()
        codes = codes_by_operation.get(number, set())
        change = _safe_form(op, state, app_label, codes, connection, parts)
        for code in sorted(codes - parts.handled):
            left.append(f"{code} {RULES[code].title} (#{number} {op.describe()}): kept as written, no safe form here")
        if change is None:
            concurrent = isinstance(op, AddIndexConcurrently | RemoveIndexConcurrently) or not migration.atomic
            (parts.concurrent if concurrent else parts.atomic).append(op)
        else:
            changes.append(change)
        for atomic, ops in ((True, parts.atomic), (False, parts.concurrent)):
            if not ops:
                continue
            if segments and segments[-1][0] == atomic:
                segments[-1][1].extend(ops)
            else:
                segments.append((atomic, list(ops)))
        validations += parts.validate
        finishes += parts.finish
        later_ops += parts.later
        op.state_forwards(app_label, state)
    if not changes:
        return None
    if validations:
        segments.append((True, validations))
    if finishes:
        segments.append((True, finishes))
    now = []
    for letter, (atomic, ops) in zip("abcdefghij", segments, strict=False):
        part = Migration(f"{migration.name}_{letter}", app_label)
        part.operations = ops
        part.atomic = atomic
        part.dependencies = [(app_label, now[-1].name)] if now else list(migration.dependencies)
        now.append(part)
    now[-1].replaces = [key]
    later = None
    if later_ops:
        later = Migration(f"{migration.name}_drop", app_label)
        later.operations = later_ops
        later.dependencies = [(app_label, now[-1].name)]
    return Rewrite(app_label, migration.name, now, later, changes, left)


def rewrites_for(report: SafetyReport) -> dict[str, Rewrite]:
    """Return the rewrites of the report's pending migrations that have one, keyed "app.name"."""
    candidates = [
        m for m in report.migrations if not m.applied and any(f.code in REWRITABLE and f.counts for f in m.findings)
    ]
    if not candidates:
        return {}
    loader = MigrationLoader(connections[report.alias], ignore_no_migrations=True)
    wanted = {(m.app_label, m.name): m for m in candidates}
    found = {}
    # One walk of the plan carries the project state forward (building it per migration is quadratic).
    state = ProjectState(real_apps=loader.unmigrated_apps)
    for node in full_plan(loader):
        if node in wanted:
            rewrite = rewrite_migration(
                node[0], node[1], alias=report.alias, report=wanted[node], loader=loader, state=state.clone()
            )
            if rewrite is not None:
                found[wanted[node].key] = rewrite
        for op in loader.graph.nodes[node].operations:
            op.state_forwards(node[0], state)
    return found


def write_rewrite(rewrite: Rewrite, directory: Path) -> list[Path]:
    """Write the rewrite's files under `directory` (never over a migration module); return their paths."""
    written = []
    for relative, source in rewrite.files():
        path = directory / relative
        if path.exists():
            raise MigrationSelectionError(f"{path} exists: remove it or choose another --output")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        written.append(path)
    return written

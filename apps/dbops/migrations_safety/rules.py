"""The migration safety rules: what each operation will lock or break, graded by the live size of its table.

Each rule has a stable code. A rule function receives one operation with the project state before it
(`OperationContext`) and yields `Hit`s; the analyzer turns them into findings. Sizes come from
`migration_facts`; grades from `OperationContext.size_grade` (lock/rewrite risks grow with the table) or
`compat_grade` (breaking the code that is still running does not depend on size).
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

from django.contrib.postgres import operations as pg_operations
from django.contrib.postgres.constraints import ExclusionConstraint
from django.db import models
from django.db.backends.utils import truncate_name
from django.db.migrations import operations
from django.db.migrations.state import ProjectState

from dbops.conf import MigrationSafetyConfig
from dbops.migrations_safety import sql as classified
from dbops.migrations_safety.facts import LiveFacts, TableFacts

MB = 1024 * 1024
# CharField limits below this (without choices) tend to be outgrown; PostgreSQL stores text and varchar alike.
SMALL_CHAR_LIMIT = 20


class Severity(enum.IntEnum):
    INFO = 1
    WARN = 2
    BLOCK = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclasses.dataclass(frozen=True)
class Rule:
    code: str
    title: str
    why: str
    safe_alternative: str


RULES = {
    rule.code: rule
    for rule in (
        Rule(
            "M001",
            "NOT NULL column without a database default",
            "Django drops the column DEFAULT right after adding it: INSERTs from the code still running (which does "
            "not know the column) fail; without any default the ALTER itself fails on a table with rows.",
            "Give the field db_default= (Django >= 5.0), or add it null=True, backfill, then make it NOT NULL.",
        ),
        Rule(
            "M002",
            "column with a volatile default",
            "A volatile DEFAULT (random(), gen_random_uuid(), clock_timestamp()) is evaluated per row: PostgreSQL "
            "rewrites the whole table under an ACCESS EXCLUSIVE lock.",
            "Add the column without the default (or with a constant one), backfill in batches, then set the default.",
        ),
        Rule(
            "M003",
            "column type change",
            "Changing a column's type rewrites the table (and its indexes) under an ACCESS EXCLUSIVE lock; only "
            "widening varchar, varchar -> text and raising numeric precision are free.",
            "Add a new column, dual-write and backfill in batches, switch reads, then drop the old column.",
        ),
        Rule(
            "M004",
            "SET NOT NULL on an existing column",
            "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock, blocking reads and writes.",
            "AddConstraintNotValid(CheckConstraint(condition=Q(col__isnull=False))), then ValidateConstraint in a "
            "later migration, then the AlterField: PostgreSQL >= 12 uses the validated check and skips the scan.",
        ),
        Rule(
            "M005",
            "index built without CONCURRENTLY",
            "CREATE INDEX holds a SHARE lock for the whole build: every INSERT, UPDATE and DELETE waits.",
            "AddIndexConcurrently (django.contrib.postgres.operations) in a migration with atomic = False.",
        ),
        Rule(
            "M006",
            "CONCURRENTLY inside an atomic migration",
            "CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction block: the migration fails.",
            "Set atomic = False on the migration (and keep that migration to the concurrent operation).",
        ),
        Rule(
            "M007",
            "index dropped without CONCURRENTLY",
            "DROP INDEX takes an ACCESS EXCLUSIVE lock: it queues behind running queries and every query queues "
            "behind it.",
            "RemoveIndexConcurrently (django.contrib.postgres.operations) in a migration with atomic = False.",
        ),
        Rule(
            "M008",
            "foreign key validated while added",
            "Adding a FOREIGN KEY validates every row while holding SHARE ROW EXCLUSIVE locks on both tables.",
            "Add the field with db_constraint=False, then RunSQL ADD CONSTRAINT ... NOT VALID, then VALIDATE "
            "CONSTRAINT in a later migration.",
        ),
        Rule(
            "M009",
            "check constraint validated while added",
            "ADD CONSTRAINT ... CHECK scans the whole table under an ACCESS EXCLUSIVE lock.",
            "AddConstraintNotValid, then ValidateConstraint in a later migration (django.contrib.postgres.operations).",
        ),
        Rule(
            "M010",
            "unique constraint built in place",
            "A UNIQUE constraint builds its index under a lock that blocks writes for the whole build.",
            "RunSQL CREATE UNIQUE INDEX CONCURRENTLY in an atomic = False migration, then ALTER TABLE ... ADD "
            "CONSTRAINT ... UNIQUE USING INDEX (SeparateDatabaseAndState keeps Django's state in step).",
        ),
        Rule(
            "M011",
            "column removed",
            "The code still running during a rolling deploy selects every model field: it fails once the column is "
            "gone.",
            "Deploy the code without the field first (SeparateDatabaseAndState with a state-only RemoveField), drop "
            "the column in a later release.",
        ),
        Rule(
            "M012",
            "column renamed",
            "The code still running uses the old column name and fails as soon as the rename commits.",
            "Add the new column, dual-write and backfill, move reads, then drop the old one (or keep db_column=).",
        ),
        Rule(
            "M013",
            "table removed",
            "The code still running may read or write the table: its queries fail once it is dropped.",
            "Deploy the code without the model first, drop the table in a later release.",
        ),
        Rule(
            "M014",
            "table renamed",
            "The code still running uses the old table name and fails as soon as the rename commits.",
            "Keep the old table name with Meta.db_table, or rename in steps with a view under the old name.",
        ),
        Rule(
            "M015",
            "RunPython without reverse code",
            "The migration cannot be unapplied: a rollback past it is impossible.",
            "Pass reverse_code= (migrations.RunPython.noop when undoing needs nothing).",
        ),
        Rule(
            "M016",
            "RunSQL without reverse SQL",
            "The migration cannot be unapplied: a rollback past it is impossible.",
            "Pass reverse_sql= (migrations.RunSQL.noop when undoing needs nothing).",
        ),
        Rule(
            "M017",
            "data change over a large table in one transaction",
            "A data migration in one transaction holds its row locks (and the migration's other locks) until it "
            "ends, and bloats the table.",
            "Move the data change to a migration with atomic = False and update in batches of a few thousand rows.",
        ),
        Rule(
            "M018",
            "raw SQL the rules cannot see",
            "RunSQL runs statements the analyzer does not understand: their locks and duration are unknown.",
            "Review the SQL (lock_timeout, CONCURRENTLY, NOT VALID), then suppress this finding with the reason.",
        ),
        Rule(
            "M019",
            "non-atomic migration",
            "Without a transaction a failure leaves the migration half-applied and Django does not record it: the "
            "next run repeats the steps that already succeeded.",
            "Keep non-atomic migrations to a single operation (the concurrent index) and make each step idempotent.",
        ),
        Rule(
            "M020",
            "json column",
            "json stores the text as given: no indexing, no equality, re-parsed on every read.",
            "Use models.JSONField (jsonb).",
        ),
        Rule(
            "M021",
            "small character limit",
            "A small varchar limit is outgrown and each raise is another migration; PostgreSQL stores text and "
            "varchar the same way.",
            "Use TextField, or a generous max_length, and validate the length in forms/serializers.",
        ),
        Rule(
            "M022",
            "integer primary key",
            "An integer key runs out at 2,147,483,647 rows; changing it later rewrites the table and every "
            "referencing column.",
            "Use BigAutoField (DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField').",
        ),
        Rule(
            "M023",
            "stored generated column",
            "Adding a stored GENERATED column computes it for every row and rewrites the table under an ACCESS "
            "EXCLUSIVE lock: reads and writes wait for the whole rewrite.",
            "Add a plain nullable column, fill it in batches (a trigger keeps new rows right), then switch to it; or "
            "add the generated column while the table is small.",
        ),
        Rule(
            "M024",
            "exclusion constraint built in place",
            "ADD CONSTRAINT ... EXCLUDE builds its index and checks every row under an ACCESS EXCLUSIVE lock; "
            "unlike CHECK and FOREIGN KEY it cannot be added NOT VALID.",
            "Add it when the table is new or small, or in a maintenance window; there is no online form.",
        ),
        Rule(
            "M025",
            "NOT NULL the running code may violate",
            "During a rolling deploy the code still running knows the field as nullable and may save NULL: its "
            "writes fail as soon as the column is NOT NULL, whatever the table's size.",
            "Release code that always writes a value first, backfill, then make the column NOT NULL in a later "
            "release.",
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class Hit:
    """One rule's verdict on one operation."""

    code: str
    severity: Severity
    table: str = ""
    detail: str = ""
    advice: str = ""  # replaces the rule's safe alternative when this case needs other advice


@dataclasses.dataclass
class OperationContext:
    """One operation, the project state before it, and what the database and the plan say about its tables."""

    app_label: str
    migration: object
    # Any: each rule reads the attributes of the operation classes it handles (AddField.field, RunSQL.sql, ...).
    operation: Any
    state: ProjectState
    facts: LiveFacts
    thresholds: MigrationSafetyConfig
    connection: object
    created_in_plan: set[str]
    created_in_migration: set[str]
    validated_not_null: set[tuple[str, str]]
    # Design advice (M020-M022) is for code the site can change: not Django's contrib apps, not installed packages.
    design_rules: bool = True
    # (table, column) pairs a RunSQL of the same migration gives a database DEFAULT (ALTER COLUMN ... SET DEFAULT).
    defaults_set_in_migration: frozenset[tuple[str, str]] = frozenset()
    # (table, column) pairs a pending migration adds before this operation: the running code does not use them.
    columns_added_in_plan: set[tuple[str, str]] = dataclasses.field(default_factory=set)

    @property
    def atomic(self) -> bool:
        return bool(getattr(self.migration, "atomic", True))

    def table_of(self, model_name: str, app_label: str | None = None) -> str | None:
        model = self.state.models.get((app_label or self.app_label, model_name.lower()))
        if model is None:
            return None
        return table_name(model.app_label, model.name_lower, model.options, self.connection)

    def field(self, model_name: str, name: str) -> models.Field | None:
        model = self.state.models.get((self.app_label, model_name.lower()))
        return model.fields.get(name) if model else None

    def size_grade(self, table: str | None, *, cap: Severity = Severity.BLOCK) -> Hit | None:
        """Grade a lock/rewrite risk by the table's live size; None for a table this migration creates."""
        if table is None or table in self.created_in_migration:
            return None
        facts = self.facts.table(table)
        if facts is None:
            reason = "created earlier in this plan (empty)" if table in self.created_in_plan else "size unknown"
            return Hit("", Severity.INFO, table, reason)
        return Hit("", min(_size_severity(facts, self.thresholds), cap), table, describe_size(facts))

    def compat_grade(self, table: str | None) -> Hit | None:
        """Grade breaking the running code: block on a table the database has, info on one this plan created."""
        if table is None or table in self.created_in_migration:
            return None
        facts = self.facts.table(table)
        if facts is not None:
            return Hit("", Severity.BLOCK, table, describe_size(facts))
        if table in self.created_in_plan:
            return Hit("", Severity.INFO, table, "created earlier in this plan")
        return Hit("", Severity.WARN, table, "not in the database")


def table_name(app_label: str, model_name: str, options: dict, connection) -> str:
    """Return the db_table Django would use for a model state."""
    table = options.get("db_table") or f"{app_label}_{model_name}"
    return truncate_name(table, connection.ops.max_name_length())


def describe_size(facts: TableFacts) -> str:
    rows = "unknown rows (never analyzed)" if facts.estimated_rows is None else f"~{facts.estimated_rows:,} rows"
    return f"{rows}, {facts.size_bytes / MB:,.1f} MB"


def _size_severity(facts: TableFacts, thresholds: MigrationSafetyConfig) -> Severity:
    rows = facts.estimated_rows if facts.estimated_rows is not None else 0
    if rows >= thresholds.block_rows or facts.size_bytes >= thresholds.block_mb * MB:
        return Severity.BLOCK
    if rows >= thresholds.warn_rows or facts.size_bytes >= thresholds.warn_mb * MB:
        return Severity.WARN
    return Severity.INFO


def _graded(code: str, grade: Hit | None, detail: str = "", *, advice: str = "") -> Iterator[Hit]:
    if grade is not None:
        text = "; ".join(part for part in (detail, grade.detail) if part)
        yield Hit(code, grade.severity, grade.table, text, advice)


# --- field-level facts --------------------------------------------------------------------------------------------

_VARCHAR = re.compile(r"^varchar\((\d+)\)$")
_NUMERIC = re.compile(r"^numeric\((\d+),\s*(\d+)\)$")


def _db_type(field: models.Field, connection) -> str | None:
    try:
        return field.db_type(connection)
    except (AttributeError, ValueError, LookupError):
        # Relations to models not rendered: the type follows the target and rarely changes here.
        return None


def _column(field: models.Field, name: str) -> str:
    clone = field.clone()
    clone.set_attributes_from_name(name)
    return clone.column


def _rewrites(old_type: str, new_type: str) -> bool:
    """Tell whether ALTER COLUMN TYPE old -> new (different types) rewrites or scans the table."""
    old_varchar, new_varchar = _VARCHAR.match(old_type), _VARCHAR.match(new_type)
    if (old_varchar or old_type == "varchar") and new_type in ("text", "varchar"):
        return False
    if old_varchar and new_varchar:
        return int(new_varchar.group(1)) < int(old_varchar.group(1))
    old_numeric, new_numeric = _NUMERIC.match(old_type), _NUMERIC.match(new_type)
    if old_numeric and new_numeric:
        return not (
            new_numeric.group(2) == old_numeric.group(2) and int(new_numeric.group(1)) >= int(old_numeric.group(1))
        )
    return True


_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def _functions(expression) -> Iterator[str]:
    """Yield the SQL function names an expression calls (from `function`, or a fixed `template`)."""
    function = getattr(expression, "function", None)
    if isinstance(function, str):
        yield function.lower()
    template = getattr(expression, "template", None)
    if isinstance(template, str) and "%(function)s" not in template:
        yield from (name.lower() for name in _CALL.findall(template))
    for source in getattr(expression, "get_source_expressions", list)():
        if source is not None:
            yield from _functions(source)


def _has_db_default(field: models.Field) -> bool:
    """Tell whether the column gets a database DEFAULT that is a value (db_default=None is DEFAULT NULL: none)."""
    default = getattr(field, "db_default", models.NOT_PROVIDED)
    if default is models.NOT_PROVIDED:
        return False
    return not (default is None or (isinstance(default, models.Value) and default.value is None))


def _column_design(ctx: OperationContext, field: models.Field, name: str, table: str | None) -> Iterator[Hit]:
    """Design rules that hold whatever the table size: json, small varchar, integer keys."""
    if not ctx.design_rules:
        return
    db_type = _db_type(field, ctx.connection)
    if db_type == "json":
        yield Hit("M020", Severity.WARN, table or "", f"column {name}")
    max_length = getattr(field, "max_length", None)
    if isinstance(field, models.CharField) and max_length and max_length < SMALL_CHAR_LIMIT and not field.choices:
        yield Hit("M021", Severity.INFO, table or "", f"column {name} varchar({max_length})")
    if field.primary_key and db_type in ("integer", "smallint"):
        yield Hit("M022", Severity.WARN, table or "", f"column {name} {db_type}")


# --- rules by operation -------------------------------------------------------------------------------------------

RuleFunction = Callable[[OperationContext], Iterator[Hit]]
_RULES_BY_OPERATION: dict[type, RuleFunction] = {}


def _for(*operation_types: type) -> Callable[[RuleFunction], RuleFunction]:
    def register(function: RuleFunction) -> RuleFunction:
        for operation_type in operation_types:
            _RULES_BY_OPERATION[operation_type] = function
        return function

    return register


@_for(operations.CreateModel)
def _create_model(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    table = table_name(ctx.app_label, op.name_lower, op.options, ctx.connection)
    for name, field in op.fields:
        yield from _column_design(ctx, field, name, table)


def _not_null_without_db_default(
    ctx: OperationContext, table: str | None, name: str, field: models.Field
) -> Iterator[Hit]:
    """M001: a NOT NULL column added without a database default (its existing rows need one)."""
    if (table, _column(field, name)) in ctx.defaults_set_in_migration:
        return  # the same migration gives it a database default (RunSQL ALTER COLUMN ... SET DEFAULT)
    grade = ctx.compat_grade(table)
    if grade is None or grade.severity <= Severity.INFO:
        return
    facts = ctx.facts.table(table)
    has_rows = facts is None or facts.estimated_rows is None or facts.estimated_rows > 0
    # Called only without a real database default: a db_default here is db_default=None, i.e. DEFAULT NULL, and
    # Django then gives the existing rows no Python default either.
    null_db_default = getattr(field, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED
    fails = has_rows and (field.default is models.NOT_PROVIDED or null_db_default)
    severity = Severity.BLOCK if fails else Severity.WARN
    detail = "no default value: the ALTER fails on existing rows" if fails else "default is Python-side only"
    yield Hit("M001", severity, grade.table, f"column {name}: {detail}; {grade.detail}")


@_for(operations.AddField)
def _add_field(ctx: OperationContext) -> Iterator[Hit]:
    op, field = ctx.operation, ctx.operation.field
    if field.many_to_many:
        return  # a new join table
    table = ctx.table_of(op.model_name)
    if isinstance(field, models.GeneratedField):
        # Computed by PostgreSQL: never a missing default. Stored, it rewrites the table.
        if field.db_persist:
            yield from _graded("M023", ctx.size_grade(table), f"column {op.name} GENERATED ALWAYS AS (...) STORED")
        return
    yield from _column_design(ctx, field, op.name, table)
    if not field.null and not _has_db_default(field) and not field.primary_key:
        yield from _not_null_without_db_default(ctx, table, op.name, field)
    if _has_db_default(field):
        volatile = sorted(set(_functions(field.db_default)) & ctx.facts.volatile_functions)
        if volatile:
            yield from _graded(
                "M002", ctx.size_grade(table), f"column {op.name} db_default calls {', '.join(volatile)}()"
            )
    if field.unique and not field.primary_key:
        yield from _graded("M010", ctx.size_grade(table), f"column {op.name} unique=True")
    elif field.db_index:
        yield from _graded("M005", ctx.size_grade(table), f"column {op.name} db_index")
    if field.is_relation and getattr(field, "db_constraint", False) and not field.null:
        yield from _graded("M008", ctx.size_grade(table), f"column {op.name} -> {field.related_model}")


@_for(operations.AlterOrderWithRespectTo)
def _alter_order_with_respect_to(ctx: OperationContext) -> Iterator[Hit]:
    """Grade the NOT NULL `_order` column (Python-side default 0) that setting order_with_respect_to adds."""
    op = ctx.operation
    model = ctx.state.models.get((ctx.app_label, op.name_lower))
    if not op.order_with_respect_to or (model and model.options.get("order_with_respect_to")):
        return
    order = models.IntegerField(default=0)
    yield from _not_null_without_db_default(ctx, ctx.table_of(op.name), "_order", order)


@_for(operations.AlterField)
def _alter_field(ctx: OperationContext) -> Iterator[Hit]:
    op, new = ctx.operation, ctx.operation.field
    old = ctx.field(op.model_name, op.name)
    table = ctx.table_of(op.model_name)
    if old is None:
        return
    yield from _column_design(ctx, new, op.name, table)
    old_type, new_type = _db_type(old, ctx.connection), _db_type(new, ctx.connection)
    if old_type and new_type and old_type != new_type:
        if _rewrites(old_type, new_type):
            yield from _graded("M003", ctx.size_grade(table), f"column {op.name} {old_type} -> {new_type}")
        elif (grade := ctx.size_grade(table)) is not None:
            # Catalog-only, but still a brief ACCESS EXCLUSIVE lock that queues behind running queries.
            detail = f"column {op.name} {old_type} -> {new_type}: no rewrite, brief ACCESS EXCLUSIVE lock"
            advice = "Nothing to rewrite: run it with lock_timeout set (migration_apply does) so the brief lock "
            advice += "cannot queue behind long queries."
            yield from _graded("M003", dataclasses.replace(grade, severity=Severity.INFO), detail, advice=advice)
    if old.null and not new.null and not new.primary_key:
        column = _column(new, op.name)
        if (table, column) not in ctx.validated_not_null:
            yield from _graded("M004", ctx.size_grade(table), f"column {column}")
        compat = ctx.compat_grade(table) if (table, column) not in ctx.columns_added_in_plan else None
        if compat is not None:
            capped = dataclasses.replace(compat, severity=min(compat.severity, Severity.WARN))
            yield from _graded("M025", capped, f"column {column}")
    if new.unique and not old.unique and not new.primary_key:
        yield from _graded("M010", ctx.size_grade(table), f"column {op.name} unique=True")
    elif new.db_index and not old.db_index and not new.unique:
        yield from _graded("M005", ctx.size_grade(table), f"column {op.name} db_index")
    elif old.db_index and not new.db_index and not old.unique:
        yield from _graded("M007", ctx.size_grade(table, cap=Severity.WARN), f"column {op.name} db_index removed")
    new_fk = new.is_relation and getattr(new, "db_constraint", False)
    old_fk = old.is_relation and getattr(old, "db_constraint", False)
    if new_fk and not old_fk:
        yield from _graded("M008", ctx.size_grade(table), f"column {op.name} -> {new.related_model}")


@_for(operations.AddIndex)
def _add_index(ctx: OperationContext) -> Iterator[Hit]:
    name = ctx.operation.index.name
    yield from _graded("M005", ctx.size_grade(ctx.table_of(ctx.operation.model_name)), f"index {name}")


@_for(pg_operations.AddIndexConcurrently, pg_operations.RemoveIndexConcurrently)
def _concurrent_index(ctx: OperationContext) -> Iterator[Hit]:
    if ctx.atomic:
        table = ctx.table_of(ctx.operation.model_name) or ""
        yield Hit("M006", Severity.BLOCK, table, f"{type(ctx.operation).__name__} in an atomic migration")


@_for(operations.RemoveIndex)
def _remove_index(ctx: OperationContext) -> Iterator[Hit]:
    grade = ctx.size_grade(ctx.table_of(ctx.operation.model_name), cap=Severity.WARN)
    yield from _graded("M007", grade, f"index {ctx.operation.name}")


@_for(operations.AddConstraint)
def _add_constraint(ctx: OperationContext) -> Iterator[Hit]:
    constraint = ctx.operation.constraint
    if isinstance(constraint, ExclusionConstraint):
        code = "M024"
    else:
        code = "M010" if isinstance(constraint, models.UniqueConstraint) else "M009"
    yield from _graded(code, ctx.size_grade(ctx.table_of(ctx.operation.model_name)), f"constraint {constraint.name}")


@_for(pg_operations.AddConstraintNotValid)
def _add_constraint_not_valid(ctx: OperationContext) -> Iterator[Hit]:
    return iter(())


@_for(pg_operations.ValidateConstraint)
def _validate_constraint(ctx: OperationContext) -> Iterator[Hit]:
    """Record a validated `col IS NOT NULL` check: a later SET NOT NULL on that column skips the scan."""
    op = ctx.operation
    model = ctx.state.models.get((ctx.app_label, op.model_name.lower()))
    table = ctx.table_of(op.model_name)
    for constraint in model.options.get("constraints", []) if model else []:
        condition = getattr(constraint, "condition", None) or getattr(constraint, "check", None)
        if constraint.name == op.name and isinstance(condition, models.Q) and len(condition.children) == 1:
            lookup, value = condition.children[0]
            # Q(col__isnull=False) or ~Q(col__isnull=True)
            if lookup.endswith("__isnull") and bool(value) == condition.negated:
                field_name = lookup.removesuffix("__isnull")
                field = model.fields.get(field_name)
                if field is not None:
                    ctx.validated_not_null.add((table, _column(field, field_name)))
    return iter(())


@_for(operations.AlterUniqueTogether, operations.AlterIndexTogether)
def _alter_together(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    model = ctx.state.models.get((ctx.app_label, op.name_lower))
    before = {tuple(t) for t in (model.options.get(op.option_name, ()) if model else ())}
    after = {tuple(t) for t in (op.option_value or ())}
    table = ctx.table_of(op.name)
    added, removed = after - before, before - after
    is_unique = isinstance(op, operations.AlterUniqueTogether)
    for fields in sorted(added):
        yield from _graded("M010" if is_unique else "M005", ctx.size_grade(table), f"{op.option_name} {fields}")
    if not is_unique:
        for fields in sorted(removed):
            yield from _graded("M007", ctx.size_grade(table, cap=Severity.WARN), f"{op.option_name} {fields}")


@_for(operations.RemoveField)
def _remove_field(ctx: OperationContext) -> Iterator[Hit]:
    field = ctx.field(ctx.operation.model_name, ctx.operation.name)
    table = ctx.table_of(ctx.operation.model_name)
    if field is not None and field.many_to_many and table:
        join_table = field.db_table or truncate_name(
            f"{table}_{ctx.operation.name}", ctx.connection.ops.max_name_length()
        )
        yield from _graded("M013", ctx.compat_grade(join_table), f"join table of {ctx.operation.name}")
        return
    yield from _graded("M011", ctx.compat_grade(table), f"column {ctx.operation.name}")


@_for(operations.RenameField)
def _rename_field(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    field = ctx.field(op.model_name, op.old_name)
    if field is not None and (field.db_column or field.many_to_many):
        return  # db_column pins the column name; nothing is renamed in the database
    yield from _graded("M012", ctx.compat_grade(ctx.table_of(op.model_name)), f"column {op.old_name} -> {op.new_name}")


@_for(operations.DeleteModel)
def _delete_model(ctx: OperationContext) -> Iterator[Hit]:
    yield from _graded("M013", ctx.compat_grade(ctx.table_of(ctx.operation.name)))


@_for(operations.RenameModel)
def _rename_model(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    model = ctx.state.models.get((ctx.app_label, op.old_name_lower))
    if model is None or model.options.get("db_table"):
        return  # an explicit db_table keeps the table name
    old = ctx.table_of(op.old_name)
    new = table_name(ctx.app_label, op.new_name_lower, model.options, ctx.connection)
    yield from _graded("M014", ctx.compat_grade(old), f"{old} -> {new}")


@_for(operations.AlterModelTable)
def _alter_model_table(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    old = ctx.table_of(op.name)
    model = ctx.state.models.get((ctx.app_label, op.name_lower))
    new = table_name(ctx.app_label, op.name_lower, {"db_table": op.table}, ctx.connection) if model else None
    if old != new:
        yield from _graded("M014", ctx.compat_grade(old), f"{old} -> {new}")


_GET_MODEL = re.compile(r"""get_model\(\s*["'](\w+)["']\s*,\s*["'](\w+)["']|get_model\(\s*["'](\w+)\.(\w+)["']""")


def _tables_in_code(ctx: OperationContext, code) -> list[str]:
    try:
        source = inspect.getsource(code)
    except (OSError, TypeError):
        return []
    tables = []
    for match in _GET_MODEL.finditer(source):
        app_label, model_name = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        table = ctx.table_of(model_name, app_label)
        if table:
            tables.append(table)
    return tables


@_for(operations.RunPython)
def _run_python(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    name = getattr(op.code, "__name__", "code")
    if op.reverse_code is None:
        yield Hit("M015", Severity.WARN, "", f"RunPython({name})")
    atomic = op.atomic if op.atomic is not None else ctx.atomic
    if atomic:
        grades = [g for g in (ctx.size_grade(t) for t in _tables_in_code(ctx, op.code)) if g is not None]
        worst = max(grades, key=lambda g: g.severity, default=None)
        # A table under the warn thresholds is not "large": only its size being unknown is worth saying.
        if worst is not None and (worst.severity > Severity.INFO or worst.detail == "size unknown"):
            yield from _graded("M017", worst, f"RunPython({name}) uses {worst.table}")


def _sql_texts(sql) -> Iterator[str]:
    """Yield the SQL texts of a RunSQL argument: a string, or a list of strings or (sql, params) pairs."""
    if sql == operations.RunSQL.noop or sql is None:
        return
    for item in [sql] if isinstance(sql, str) else list(sql):
        text = item[0] if isinstance(item, list | tuple) else item
        if str(text).strip():
            yield str(text)


def sql_statements(sql) -> list[classified.Statement]:
    """Classify every statement of a RunSQL argument with PostgreSQL's parser."""
    return [statement for text in _sql_texts(sql) for statement in classified.classify(text)]


def _statement_hits(ctx: OperationContext, statement: classified.Statement) -> Iterator[Hit]:
    table, code = statement.table, statement.code
    shown = f"RunSQL {statement.kind}: {' '.join(statement.text.split())[:100]}"
    if statement.concurrent:
        if ctx.atomic:
            yield Hit("M006", Severity.BLOCK, table or "", shown)
        return
    if code == "M007":
        index_table = ctx.facts.index_table(statement.detail)
        grade = ctx.size_grade(index_table, cap=Severity.WARN) if index_table else None
        yield from _graded(code, grade or Hit("", Severity.WARN, "", "index not in the database"), shown)
    elif code == "M002":
        volatile = sorted(set(statement.functions) & ctx.facts.volatile_functions)
        if volatile:
            yield from _graded(code, ctx.size_grade(table), f"{shown} (calls {', '.join(volatile)}())")
    elif code == "M001":
        field = models.IntegerField()  # NOT NULL, no default of any kind
        for hit in _not_null_without_db_default(ctx, table, statement.column or "", field):
            yield dataclasses.replace(hit, detail=f"{shown}; {hit.detail}")
    elif code == "M004":
        if (table, statement.column) not in ctx.validated_not_null:
            yield from _graded(code, ctx.size_grade(table), shown)
    elif code in ("M011", "M012", "M013", "M014"):
        yield from _graded(code, ctx.compat_grade(table), shown)
    elif code == "M017":
        if ctx.atomic:
            grade = ctx.size_grade(table)
            if grade is not None and (grade.severity > Severity.INFO or grade.detail == "size unknown"):
                yield from _graded(code, grade, shown)
    elif code:
        yield from _graded(code, ctx.size_grade(table), shown)


@_for(operations.RunSQL)
def _run_sql(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    if op.reverse_sql is None:
        yield Hit("M016", Severity.WARN, "", "RunSQL")
    for direction, sql in (("", op.sql), ("reverse ", op.reverse_sql)):
        statements = sql_statements(sql)
        for statement in statements:
            for hit in _statement_hits(ctx, statement):
                if direction:  # runs on rollback only: worth knowing, never a reason to refuse the migration
                    hit = dataclasses.replace(
                        hit, severity=min(hit.severity, Severity.WARN), detail=f"on rollback: {hit.detail}"
                    )
                yield hit
        unknown = sorted({s.unknown for s in statements if s.unknown})
        if unknown:
            yield Hit(
                "M018",
                Severity.WARN,
                "",
                f"{direction}RunSQL the parser read but the rules do not know: {', '.join(unknown)}",
            )


def defaults_set_by_sql(migration) -> frozenset[tuple[str, str]]:
    """Return the (table, column) pairs the migration's RunSQL gives a database DEFAULT (SET DEFAULT)."""
    found = set()
    for op in migration.operations:
        inner = op.database_operations if isinstance(op, operations.SeparateDatabaseAndState) else [op]
        for candidate in inner:
            if isinstance(candidate, operations.RunSQL):
                for statement in sql_statements(candidate.sql):
                    if statement.kind == "ALTER COLUMN SET DEFAULT" and statement.table:
                        found.add((statement.table.split(".")[-1], statement.column))
    return frozenset(found)


def rule_hits(ctx: OperationContext) -> Iterator[Hit]:
    """Yield the hits of the rules for this operation's type (the most specific class registered)."""
    if isinstance(ctx.operation, operations.SeparateDatabaseAndState):
        for inner in ctx.operation.database_operations:
            yield from rule_hits(dataclasses.replace(ctx, operation=inner))
        return
    for klass in type(ctx.operation).__mro__:
        if klass in _RULES_BY_OPERATION:
            yield from _RULES_BY_OPERATION[klass](ctx)
            return
    yield from _schema_editor_sql(ctx)


# Operations that change Django's state only: nothing reaches the database.
_STATE_ONLY = (operations.AlterModelOptions, operations.AlterModelManagers)


def _schema_editor_sql(ctx: OperationContext) -> Iterator[Hit]:
    """Grade an operation no rule knows (a third-party or custom one) by the SQL Django's schema editor emits."""
    op = ctx.operation
    if isinstance(op, _STATE_ONLY) or op.reduces_to_sql is False:
        return
    after = ctx.state.clone()
    try:
        op.state_forwards(ctx.app_label, after)
        with ctx.connection.schema_editor(collect_sql=True, atomic=False) as editor:
            op.database_forwards(ctx.app_label, editor, ctx.state, after)
    except Exception as exc:
        yield Hit("M018", Severity.WARN, "", f"{type(op).__name__}: its SQL cannot be rendered ({type(exc).__name__})")
        return
    statements = [s for text in editor.collected_sql for s in classified.classify(text)]
    for statement in statements:
        yield from _statement_hits(ctx, statement)
    unknown = sorted({s.unknown for s in statements if s.unknown})
    if unknown:
        yield Hit(
            "M018", Severity.WARN, "", f"{type(op).__name__} emits SQL the rules do not know: {', '.join(unknown)}"
        )


def irreversible_operations(migration) -> list[str]:
    """Describe the operations of `migration` Django cannot unapply."""
    found = []
    for number, op in enumerate(migration.operations, start=1):
        inner = op.database_operations if isinstance(op, operations.SeparateDatabaseAndState) else [op]
        for candidate in inner:
            if not candidate.reversible:
                found.append(f"operation #{number} {candidate.describe()}")
    return found

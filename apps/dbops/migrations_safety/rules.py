"""The migration safety rules: what each operation will lock or break, graded by the live size of its table.

Each rule has a stable code. A rule function receives one operation with the project state before it
(`OperationContext`) and yields `Hit`s; the analyzer turns them into findings. Sizes come from
`migration_facts`; grades from `OperationContext.size_grade` (lock/rewrite risks grow with the table) or
`compat_grade` (breaking the code that is still running does not depend on size).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator

from django.contrib.postgres import operations as pg_operations
from django.contrib.postgres.constraints import ExclusionConstraint
from django.db import models
from django.db.backends.utils import truncate_name
from django.db.migrations import operations

from dbops.migrations_safety import sql as classified
from dbops.migrations_safety.catalog import Severity
from dbops.migrations_safety.columns import (
    check_sql,
    column_name,
    column_type,
    describe_default,
    new_column_default,
    referencing_fields,
    schema_changes,
    target_key,
)
from dbops.migrations_safety.context import Hit, OperationContext, graded, table_name
from dbops.migrations_safety.runpython import data_uses, sql_texts

# CharField limits below this (without choices) tend to be outgrown; PostgreSQL stores text and varchar alike.
SMALL_CHAR_LIMIT = 20


# --- field-level facts --------------------------------------------------------------------------------------------

_VARCHAR = re.compile(r"^varchar\((\d+)\)$")
_NUMERIC = re.compile(r"^numeric\((\d+),\s*(\d+)\)$")


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
    db_type = None if field.is_relation else column_type(field, ctx.state, ctx.app_label, "", ctx.connection)
    if db_type == "json":
        yield Hit("M020", Severity.WARN, table or "", f"column {name}")
    max_length = getattr(field, "max_length", None)
    if isinstance(field, models.CharField) and max_length and max_length < SMALL_CHAR_LIMIT and not field.choices:
        yield Hit("M021", Severity.INFO, table or "", f"column {name} varchar({max_length})")
    if field.primary_key and db_type in ("integer", "smallint"):
        yield Hit("M022", Severity.WARN, table or "", f"column {name} {db_type}")


# --- rules by operation -------------------------------------------------------------------------------------------

RuleFunction = Callable[[OperationContext], Iterator[Hit]]
RULES_BY_OPERATION: dict[type, RuleFunction] = {}


def _for(*operation_types: type) -> Callable[[RuleFunction], RuleFunction]:
    def register(function: RuleFunction) -> RuleFunction:
        for operation_type in operation_types:
            RULES_BY_OPERATION[operation_type] = function
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
    if (table, column_name(field, name)) in ctx.defaults_set_in_migration:
        return  # the same migration gives it a database default (RunSQL ALTER COLUMN ... SET DEFAULT)
    grade = ctx.compat_grade(table)
    if grade is None or grade.severity <= Severity.INFO:
        return
    facts = ctx.facts.table(table)
    has_rows = facts is None or facts.estimated_rows is None or facts.estimated_rows > 0
    # Called only without a real database default: a db_default here is db_default=None, i.e. DEFAULT NULL, and
    # Django then gives the existing rows no Python default either.
    null_db_default = getattr(field, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED
    one_off = None if null_db_default else new_column_default(field, ctx.connection)
    fails = has_rows and one_off is None
    severity = Severity.BLOCK if fails else Severity.WARN
    if fails:
        detail = "no default value: the ALTER fails on existing rows"
    else:
        detail = (
            f"existing rows get {describe_default(one_off)}, then Django drops the DEFAULT: inserts that omit the "
            "column fail"
        )
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
            yield from graded("M023", ctx.size_grade(table), f"column {op.name} GENERATED ALWAYS AS (...) STORED")
        return
    yield from _column_design(ctx, field, op.name, table)
    if not field.null and not _has_db_default(field) and not field.primary_key:
        yield from _not_null_without_db_default(ctx, table, op.name, field)
    if _has_db_default(field):
        volatile = sorted(set(_functions(field.db_default)) & ctx.facts.volatile_functions)
        if volatile:
            yield from graded(
                "M002", ctx.size_grade(table), f"column {op.name} db_default calls {', '.join(volatile)}()"
            )
    if field.unique and not field.primary_key:
        yield from graded("M010", ctx.size_grade(table), f"column {op.name} unique=True")
    elif field.db_index:
        yield from graded("M005", ctx.size_grade(table), f"column {op.name} db_index")
    if field.is_relation and getattr(field, "db_constraint", False) and not field.null:
        yield from graded("M008", ctx.size_grade(table), f"column {op.name} -> {field.related_model}")
    check = check_sql(field, op.name, ctx.connection)
    if check and not field.null or check and _has_db_default(field):
        # Existing rows get the default: PostgreSQL checks each of them under the ACCESS EXCLUSIVE lock.
        yield from graded("M009", ctx.size_grade(table), f"column {op.name} CHECK ({check}) checked on every row")


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
    if not schema_changes(old, new, op.name, ctx.app_label, op.model_name_lower):
        return  # only Python-side attributes change: Django emits no SQL
    yield from _column_design(ctx, new, op.name, table)
    old_type = column_type(old, ctx.state, ctx.app_label, op.model_name_lower, ctx.connection)
    new_type = column_type(new, ctx.state, ctx.app_label, op.model_name_lower, ctx.connection)
    if old_type and new_type and old_type != new_type:
        if _rewrites(old_type, new_type):
            yield from graded("M003", ctx.size_grade(table), f"column {op.name} {old_type} -> {new_type}")
            yield from _referencing_rewrites(ctx, op.name, old_type, new_type)
        elif (grade := ctx.size_grade(table)) is not None:
            # Catalog-only, but still a brief ACCESS EXCLUSIVE lock that queues behind running queries.
            detail = f"column {op.name} {old_type} -> {new_type}: no rewrite, brief ACCESS EXCLUSIVE lock"
            advice = "Nothing to rewrite: run it with lock_timeout set (migration_apply does) so the brief lock "
            advice += "cannot queue behind long queries."
            yield from graded("M003", dataclasses.replace(grade, severity=Severity.INFO), detail, advice=advice)
    if _has_db_default(old) and not _has_db_default(new) and not new.null:
        compat = (
            ctx.compat_grade(table) if (table, column_name(new, op.name)) not in ctx.columns_added_in_plan else None
        )
        if compat is not None:
            detail = (
                f"column {op.name}: its database DEFAULT is dropped while NOT NULL; the code still running omits the "
                "column from INSERTs (db_default) and they fail"
            )
            advice = "Drop db_default in the release after the code that sets the value itself is deployed."
            yield from graded("M001", dataclasses.replace(compat, severity=min(compat.severity, Severity.WARN)),
                              detail, advice=advice)  # fmt: skip
    if old.null and not new.null and not new.primary_key:
        column = column_name(new, op.name)
        if (table, column) not in ctx.validated_not_null:
            yield from graded("M004", ctx.size_grade(table), f"column {column}")
        compat = ctx.compat_grade(table) if (table, column) not in ctx.columns_added_in_plan else None
        if compat is not None:
            capped = dataclasses.replace(compat, severity=min(compat.severity, Severity.WARN))
            yield from graded("M025", capped, f"column {column}")
    if new.unique and not old.unique and not new.primary_key:
        yield from graded("M010", ctx.size_grade(table), f"column {op.name} unique=True")
    elif new.db_index and not old.db_index and not new.unique:
        yield from graded("M005", ctx.size_grade(table), f"column {op.name} db_index")
    elif old.db_index and not new.db_index and not old.unique:
        yield from graded("M007", ctx.size_grade(table, cap=Severity.WARN), f"column {op.name} db_index removed")
    elif old.unique and not new.unique and not new.db_index and not old.primary_key:
        kind = old_type or ""
        like = " and its _like index" if kind.startswith("varchar") or kind == "text" else ""
        detail = f"column {op.name} unique=True removed: DROP CONSTRAINT{like} (DROP INDEX, not CONCURRENTLY)"
        yield from graded("M007", ctx.size_grade(table, cap=Severity.WARN), detail)
    new_fk = new.is_relation and getattr(new, "db_constraint", False)
    old_fk = old.is_relation and getattr(old, "db_constraint", False)
    if new_fk and not old_fk:
        yield from graded("M008", ctx.size_grade(table), f"column {op.name} -> {new.related_model}")
    elif new_fk and old_fk:
        # Django drops the foreign key of a changed FK column and adds it back, validated.
        target = target_key(new, ctx.app_label, op.model_name_lower)
        target_table = ctx.table_of(target[1], target[0]) if target else None
        detail = (
            f"column {op.name}: Django drops the foreign key and adds it back validated (SHARE ROW EXCLUSIVE on "
            f"{table} and {target_table}, every row checked)"
        )
        advice = (
            "Keep the constraint: SeparateDatabaseAndState with the AlterField in state_operations and only the "
            "column change (e.g. ALTER COLUMN ... DROP NOT NULL) in RunSQL."
        )
        yield from graded("M008", ctx.size_grade(table), detail, advice=advice)
    old_check = check_sql(old, op.name, ctx.connection)
    new_check = check_sql(new, op.name, ctx.connection)
    if new_check and new_check != old_check:
        yield from graded("M009", ctx.size_grade(table), f"column {op.name} CHECK ({new_check}) added")


def _referencing_rewrites(ctx: OperationContext, name: str, old_type: str, new_type: str) -> Iterator[Hit]:
    """M003 on the tables whose foreign key columns follow a key whose type changes (Django alters them too)."""
    key = (ctx.app_label, ctx.operation.model_name_lower)
    for (app_label, model_name), field_name in referencing_fields(ctx.state, key, name):
        table = ctx.table_of(model_name, app_label)
        detail = f"column {field_name} follows {key[0]}.{key[1]}.{name}: {old_type} -> {new_type}, foreign key re-added"
        yield from graded("M003", ctx.size_grade(table), detail)


@_for(operations.AddIndex)
def _add_index(ctx: OperationContext) -> Iterator[Hit]:
    name = ctx.operation.index.name
    yield from graded("M005", ctx.size_grade(ctx.table_of(ctx.operation.model_name)), f"index {name}")


@_for(pg_operations.AddIndexConcurrently, pg_operations.RemoveIndexConcurrently)
def _concurrent_index(ctx: OperationContext) -> Iterator[Hit]:
    if ctx.atomic:
        table = ctx.table_of(ctx.operation.model_name) or ""
        yield Hit("M006", Severity.BLOCK, table, f"{type(ctx.operation).__name__} in an atomic migration")


@_for(operations.RemoveIndex)
def _remove_index(ctx: OperationContext) -> Iterator[Hit]:
    grade = ctx.size_grade(ctx.table_of(ctx.operation.model_name), cap=Severity.WARN)
    yield from graded("M007", grade, f"index {ctx.operation.name}")


@_for(operations.AddConstraint)
def _add_constraint(ctx: OperationContext) -> Iterator[Hit]:
    constraint = ctx.operation.constraint
    if isinstance(constraint, ExclusionConstraint):
        code = "M024"
    else:
        code = "M010" if isinstance(constraint, models.UniqueConstraint) else "M009"
    yield from graded(code, ctx.size_grade(ctx.table_of(ctx.operation.model_name)), f"constraint {constraint.name}")


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
                    ctx.validated_not_null.add((table, column_name(field, field_name)))
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
        yield from graded("M010" if is_unique else "M005", ctx.size_grade(table), f"{op.option_name} {fields}")
    if not is_unique:
        for fields in sorted(removed):
            yield from graded("M007", ctx.size_grade(table, cap=Severity.WARN), f"{op.option_name} {fields}")


@_for(operations.RemoveField)
def _remove_field(ctx: OperationContext) -> Iterator[Hit]:
    field = ctx.field(ctx.operation.model_name, ctx.operation.name)
    table = ctx.table_of(ctx.operation.model_name)
    if field is not None and field.many_to_many and table:
        join_table = field.db_table or truncate_name(
            f"{table}_{ctx.operation.name}", ctx.connection.ops.max_name_length()
        )
        yield from graded("M013", ctx.compat_grade(join_table), f"join table of {ctx.operation.name}")
        return
    yield from graded("M011", ctx.compat_grade(table), f"column {ctx.operation.name}")


@_for(operations.RenameField)
def _rename_field(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    field = ctx.field(op.model_name, op.old_name)
    if field is not None and (field.db_column or field.many_to_many):
        return  # db_column pins the column name; nothing is renamed in the database
    yield from graded("M012", ctx.compat_grade(ctx.table_of(op.model_name)), f"column {op.old_name} -> {op.new_name}")


@_for(operations.DeleteModel)
def _delete_model(ctx: OperationContext) -> Iterator[Hit]:
    yield from graded("M013", ctx.compat_grade(ctx.table_of(ctx.operation.name)))


@_for(operations.RenameModel)
def _rename_model(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    model = ctx.state.models.get((ctx.app_label, op.old_name_lower))
    if model is None or model.options.get("db_table"):
        return  # an explicit db_table keeps the table name
    old = ctx.table_of(op.old_name)
    new = table_name(ctx.app_label, op.new_name_lower, model.options, ctx.connection)
    yield from graded("M014", ctx.compat_grade(old), f"{old} -> {new}")


@_for(operations.AlterModelTable)
def _alter_model_table(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    old = ctx.table_of(op.name)
    model = ctx.state.models.get((ctx.app_label, op.name_lower))
    new = table_name(ctx.app_label, op.name_lower, {"db_table": op.table}, ctx.connection) if model else None
    if old != new:
        yield from graded("M014", ctx.compat_grade(old), f"{old} -> {new}")


def _model_table(ctx: OperationContext, dotted: str) -> tuple[str, str] | None:
    app_label, _, model_name = dotted.partition(".")
    return (app_label, model_name.lower()) if ctx.table_of(model_name, app_label) else None


@_for(operations.RunPython)
def _run_python(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    name = getattr(op.code, "__name__", "code")
    if op.reverse_code is None:
        yield Hit("M015", Severity.WARN, "", f"RunPython({name})")
    atomic = op.atomic if op.atomic is not None else ctx.atomic
    if not atomic:
        return
    uses = data_uses(op.code, lambda dotted: _model_table(ctx, dotted))
    if uses is None:
        yield Hit(
            "M017", Severity.INFO, "", f"RunPython({name}): its source cannot be read, what it changes is unknown"
        )
        return
    seen = set()
    for use in uses:
        table = ctx.table_of(use.model[1], use.model[0])
        if (table, use.scope) in seen:
            continue
        seen.add((table, use.scope))
        grade = ctx.size_grade(table)
        if grade is None or (grade.severity <= Severity.INFO and grade.detail != "size unknown"):
            continue  # a small or new table: not a large data change
        if use.scope == "all":
            yield from graded("M017", grade, f"RunPython({name}) changes every row of {table}: {use.how}")
        elif use.scope == "filtered":
            detail = (
                f"RunPython({name}) changes the rows of {table} a filter selects: {use.how}; assumed many "
                f"(count them with the same filter before deploying)"
            )
            yield from graded("M017", dataclasses.replace(grade, severity=min(grade.severity, Severity.WARN)), detail)
        else:
            detail = f"RunPython({name}): {table} {use.how}; what it changes there is not known (read that code)"
            yield from graded("M017", dataclasses.replace(grade, severity=min(grade.severity, Severity.WARN)), detail)
    for text in sql_texts(op.code):
        for statement in classified.classify(text):
            if statement.code == "M017":
                yield from statement_hits(ctx, statement, source=f"RunPython({name}) executes")


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


def statement_hits(ctx: OperationContext, statement: classified.Statement, source: str = "RunSQL") -> Iterator[Hit]:
    table, code = statement.table, statement.code
    shown = f"{source} {statement.kind}: {' '.join(statement.text.split())[:100]}"
    if statement.concurrent:
        if ctx.atomic:
            yield Hit("M006", Severity.BLOCK, table or "", shown)
        return
    if code == "M007":
        index_table = ctx.facts.index_table(statement.detail)
        grade = ctx.size_grade(index_table, cap=Severity.WARN) if index_table else None
        yield from graded(code, grade or Hit("", Severity.WARN, "", "index not in the database"), shown)
    elif code == "M002":
        volatile = sorted(set(statement.functions) & ctx.facts.volatile_functions)
        if volatile:
            yield from graded(code, ctx.size_grade(table), f"{shown} (calls {', '.join(volatile)}())")
    elif code == "M001":
        field = models.IntegerField()  # NOT NULL, no default of any kind
        for hit in _not_null_without_db_default(ctx, table, statement.column or "", field):
            yield dataclasses.replace(hit, detail=f"{shown}; {hit.detail}")
    elif code == "M004":
        if (table, statement.column) not in ctx.validated_not_null:
            yield from graded(code, ctx.size_grade(table), shown)
    elif code in ("M011", "M012", "M013", "M014"):
        yield from graded(code, ctx.compat_grade(table), shown)
    elif code == "M017":
        if ctx.atomic:
            grade = ctx.size_grade(table)
            if grade is not None and (grade.severity > Severity.INFO or grade.detail == "size unknown"):
                yield from graded(code, grade, shown)
    elif code:
        yield from graded(code, ctx.size_grade(table), shown)


@_for(operations.RunSQL)
def _run_sql(ctx: OperationContext) -> Iterator[Hit]:
    op = ctx.operation
    if op.reverse_sql is None:
        yield Hit("M016", Severity.WARN, "", "RunSQL")
    for direction, sql in (("", op.sql), ("reverse ", op.reverse_sql)):
        statements = sql_statements(sql)
        for statement in statements:
            for hit in statement_hits(ctx, statement):
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

"""Which rules grade an operation: its class's (when it keeps that class's SQL), or the SQL it emits.

Operations on models Django never changes in the database (unmanaged, proxy, swapped) get nothing;
`SeparateDatabaseAndState` is graded by its database operations; an operation no rule models exactly is rendered
on a small state (`emitted`) and its SQL read with PostgreSQL's parser.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from django.conf import settings
from django.db.migrations import operations

from dbops.migrations_safety import sql as classified
from dbops.migrations_safety.catalog import Severity
from dbops.migrations_safety.context import Hit, OperationContext
from dbops.migrations_safety.emitted import emitted_sql
from dbops.migrations_safety.rules import RULES_BY_OPERATION, RuleFunction, statement_hits


def _touches_no_table(ctx: OperationContext) -> bool:
    """Tell whether the operation's model is one Django never changes in the database (unmanaged, proxy, swapped)."""
    op = ctx.operation
    if isinstance(op, operations.CreateModel):
        options = op.options
    else:
        name = getattr(op, "model_name", None) or getattr(op, "name", None)
        model = ctx.state.models.get((ctx.app_label, name.lower())) if isinstance(name, str) else None
        if model is None:
            return False
        options = model.options
    if not options.get("managed", True) or options.get("proxy"):
        return True
    swappable = options.get("swappable")
    if swappable:
        name = op.name if isinstance(op, operations.CreateModel) else model.name
        return getattr(settings, swappable, None) not in (None, f"{ctx.app_label}.{name}")
    return False


def _rule_for(operation) -> RuleFunction | None:
    """Return the rule of the operation's class, or of the class it extends when it keeps that class's SQL.

    A subclass that overrides `database_forwards` (FakeAddIndex, DeleteModelIfExists, ...) may emit anything: it is
    graded by the SQL it emits, not by the name of the class it extends.
    """
    for klass in type(operation).__mro__:
        if klass in RULES_BY_OPERATION:
            if klass is type(operation) or type(operation).database_forwards is klass.database_forwards:
                return RULES_BY_OPERATION[klass]
            return None
    return None


def rule_hits(ctx: OperationContext) -> Iterator[Hit]:
    """Yield the hits of the rules for this operation's type (the most specific class registered)."""
    if isinstance(ctx.operation, operations.SeparateDatabaseAndState):
        for inner in ctx.operation.database_operations:
            yield from rule_hits(dataclasses.replace(ctx, operation=inner))
        return
    if not isinstance(ctx.operation, operations.RunPython | operations.RunSQL) and _touches_no_table(ctx):
        return
    rule = _rule_for(ctx.operation)
    if rule is not None:
        yield from rule(ctx)
    else:
        yield from _schema_editor_sql(ctx)


# Operations that change Django's state only: nothing reaches the database.
_STATE_ONLY = (operations.AlterModelOptions, operations.AlterModelManagers)


def _schema_editor_sql(ctx: OperationContext) -> Iterator[Hit]:
    """Grade an operation no rule knows (a third-party or custom one) by the SQL Django's schema editor emits."""
    op = ctx.operation
    if isinstance(op, _STATE_ONLY) or op.reduces_to_sql is False:
        return
    try:
        collected = emitted_sql(ctx.app_label, op, ctx.state, ctx.connection)
    except Exception as exc:  # noqa: BLE001 - third-party code: whatever it raises is reported, never a crash
        yield Hit("M018", Severity.WARN, "", f"{type(op).__name__}: its SQL cannot be rendered ({type(exc).__name__})")
        return
    statements = [s for text in collected for s in classified.classify(text)]
    for statement in statements:
        yield from statement_hits(ctx, statement, source=f"{type(op).__name__} emits")
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

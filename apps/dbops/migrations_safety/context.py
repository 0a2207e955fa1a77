"""What a rule sees of one operation (`OperationContext`) and how it grades it (`Hit`, by size or by compatibility).

Sizes come from `facts`; `size_grade` grades a lock/rewrite risk by the table's live size, `compat_grade` grades
breaking the code still running (which does not depend on size).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from django.db import models
from django.db.backends.utils import truncate_name
from django.db.migrations.state import ProjectState

from dbops.conf import MigrationSafetyConfig
from dbops.migrations_safety.catalog import Severity
from dbops.migrations_safety.facts import LiveFacts, TableFacts

MB = 1024 * 1024


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


def graded(code: str, grade: Hit | None, detail: str = "", *, advice: str = "") -> Iterator[Hit]:
    if grade is not None:
        text = "; ".join(part for part in (detail, grade.detail) if part)
        yield Hit(code, grade.severity, grade.table, text, advice)

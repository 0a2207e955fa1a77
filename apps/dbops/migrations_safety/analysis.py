"""Analyze migrations before they run: every operation against the rules, graded by the live size of its table.

One pass over Django's migration graph in plan order, carrying the project state forward operation by
operation (never rendering models), plus three catalog queries: the cost is linear in the number of
migrations and needs no `sqlmigrate` per migration.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from django.apps import apps as django_apps
from django.db import connections
from django.db.migrations import operations
from django.db.migrations.exceptions import AmbiguityError
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState

from dbops.conf import MigrationSafetyConfig, get_config
from dbops.exceptions import MigrationSelectionError
from dbops.migrations_safety.catalog import RULES, Severity
from dbops.migrations_safety.context import OperationContext, table_name
from dbops.migrations_safety.dispatch import irreversible_operations, rule_hits
from dbops.migrations_safety.facts import LiveFacts, load_facts
from dbops.migrations_safety.rules import defaults_set_by_sql

Node = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class Finding:
    """One rule hit on one operation of one migration."""

    code: str
    severity: Severity
    migration: str
    operation: str
    table: str
    detail: str
    suppressed: str = ""
    advice: str = ""

    @property
    def safe_alternative(self) -> str:
        return self.advice or self.rule.safe_alternative

    @property
    def rule(self):
        return RULES[self.code]

    @property
    def counts(self) -> bool:
        """Whether it grades the migration (a suppressed finding is reported but does not)."""
        return not self.suppressed

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "title": self.rule.title,
            "severity": self.severity.label,
            "migration": self.migration,
            "operation": self.operation,
            "table": self.table,
            "detail": self.detail,
            "why": self.rule.why,
            "safe_alternative": self.safe_alternative,
            "suppressed": self.suppressed or None,
        }


@dataclasses.dataclass
class MigrationReport:
    app_label: str
    name: str
    atomic: bool
    applied: bool
    irreversible: list[str]
    findings: list[Finding]

    @property
    def key(self) -> str:
        return f"{self.app_label}.{self.name}"

    @property
    def grade(self) -> Severity | None:
        return max((f.severity for f in self.findings if f.counts), default=None)

    def as_dict(self) -> dict:
        return {
            "migration": self.key,
            "atomic": self.atomic,
            "applied": self.applied,
            "grade": self.grade.label if self.grade else "ok",
            "irreversible": self.irreversible,
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclasses.dataclass
class SafetyReport:
    alias: str
    server_version: str
    migrations: list[MigrationReport]
    analysis_seconds: float
    thresholds: MigrationSafetyConfig

    @property
    def findings(self) -> list[Finding]:
        return [finding for report in self.migrations for finding in report.findings]

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings if f.counts), default=None)

    def fails(self, fail_on: Severity = Severity.BLOCK) -> bool:
        return self.worst is not None and self.worst >= fail_on

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.counts and f.severity is Severity.BLOCK]

    def as_dict(self) -> dict:
        findings = self.findings
        return {
            "database": self.alias,
            "server_version": self.server_version,
            "analysis_seconds": round(self.analysis_seconds, 4),
            "thresholds": {
                "warn_rows": self.thresholds.warn_rows,
                "block_rows": self.thresholds.block_rows,
                "warn_mb": self.thresholds.warn_mb,
                "block_mb": self.thresholds.block_mb,
            },
            "summary": {
                "migrations": len(self.migrations),
                "worst": self.worst.label if self.worst else "ok",
                **{s.label: sum(1 for f in findings if f.counts and f.severity is s) for s in Severity},
                "suppressed": sum(1 for f in findings if not f.counts),
            },
            "migrations": [report.as_dict() for report in self.migrations],
        }


def full_plan(loader: MigrationLoader) -> list[Node]:
    """Every migration of the graph in an order Django could apply them."""
    plan: list[Node] = []
    seen: set[Node] = set()
    for leaf in sorted(loader.graph.leaf_nodes()):
        for node in loader.graph.forwards_plan(leaf):
            if node not in seen:
                seen.add(node)
                plan.append(node)
    return plan


def select_nodes(
    loader: MigrationLoader, *, app_label: str | None = None, migration_name: str | None = None, include_applied=False
) -> list[Node]:
    """Pick the migrations to analyze: pending ones (of an app), every one with `include_applied`, or one named."""
    if app_label is not None and app_label not in loader.migrated_apps:
        raise MigrationSelectionError(f"app {app_label!r} has no migrations (is it in INSTALLED_APPS?)")
    if migration_name is not None:
        try:
            migration = loader.get_migration_by_prefix(app_label, migration_name)
        except AmbiguityError:
            raise MigrationSelectionError(
                f"more than one migration in {app_label} matches {migration_name!r}"
            ) from None
        except KeyError:
            raise MigrationSelectionError(f"{app_label} has no migration {migration_name!r}") from None
        return [(migration.app_label, migration.name)]
    return [
        node
        for node in full_plan(loader)
        if (app_label is None or node[0] == app_label) and (include_applied or node not in loader.applied_migrations)
    ]


def _suppression(config: MigrationSafetyConfig, migration, key: str, code: str) -> tuple[str, str]:
    """Return (reason, note): the reason a suppression gives, or a note when one exists without a reason."""
    in_code = getattr(migration, "safety_suppressions", {}) or {}
    reason = config.suppressions.get(key, {}).get(code) or in_code.get(code)
    if reason is None:
        return "", ""
    if not str(reason).strip():
        return "", "suppression ignored: it gives no reason"
    return str(reason).strip(), ""


def _created_tables(app_label: str, op, connection) -> set[str]:
    if isinstance(op, operations.CreateModel):
        return {table_name(app_label, op.name_lower, op.options, connection)}
    return set()


def _added_columns(app_label: str, op, state: ProjectState, connection) -> set[tuple[str, str]]:
    """Return the (table, column) an AddField adds: no code running today reads or writes it."""
    if not isinstance(op, operations.AddField) or op.field.many_to_many:
        return set()
    model = state.models.get((app_label, op.model_name_lower))
    if model is None:
        return set()
    column = op.field.db_column or (f"{op.name}_id" if op.field.is_relation else op.name)
    return {(table_name(app_label, model.name_lower, model.options, connection), column)}


def is_site_app(app_label: str) -> bool:
    """Tell whether the site's own code holds `app_label` (not Django, not dbops, not an installed package)."""
    try:
        config = django_apps.get_app_config(app_label)
    except LookupError:
        return True
    installed = any(part in ("site-packages", "dist-packages") for part in Path(config.path).parts)
    return not (installed or config.name == "dbops" or config.name.startswith(("django.", "dbops.")))


def analyze(
    *,
    alias: str = "default",
    app_label: str | None = None,
    migration_name: str | None = None,
    include_applied: bool = False,
    nodes: list[Node] | None = None,
    loader: MigrationLoader | None = None,
    config: MigrationSafetyConfig | None = None,
    facts: LiveFacts | None = None,
) -> SafetyReport:
    """Grade the selected migrations (or exactly `nodes`) against the rules and the live database."""
    started = time.perf_counter()
    connection = connections[alias]
    config = config or get_config().migrations
    loader = loader or MigrationLoader(connection, ignore_no_migrations=True)
    if nodes is None:
        nodes = select_nodes(
            loader, app_label=app_label, migration_name=migration_name, include_applied=include_applied
        )
    facts = facts or load_facts(alias)
    selected = set(nodes)
    state = ProjectState(real_apps=loader.unmigrated_apps)
    created_in_plan: set[str] = set()
    added_in_plan: set[tuple[str, str]] = set()
    validated_not_null = set(facts.validated_not_null)
    reports: dict[Node, MigrationReport] = {}
    for node in full_plan(loader):
        migration = loader.graph.nodes[node]
        if node not in selected:
            for op in migration.operations:
                if node not in loader.applied_migrations:  # pending, just not reported: it runs before these
                    created_in_plan |= _created_tables(node[0], op, connection)
                    added_in_plan |= _added_columns(node[0], op, state, connection)
                op.state_forwards(node[0], state)
            continue
        key = f"{node[0]}.{node[1]}"
        site_app = is_site_app(node[0])
        findings: list[Finding] = []
        created_in_migration: set[str] = set()
        defaults_set = defaults_set_by_sql(migration)
        for number, op in enumerate(migration.operations, start=1):
            created_in_migration |= _created_tables(node[0], op, connection)
            ctx = OperationContext(
                app_label=node[0],
                migration=migration,
                operation=op,
                state=state,
                facts=facts,
                thresholds=config,
                connection=connection,
                created_in_plan=created_in_plan,
                created_in_migration=created_in_migration,
                validated_not_null=validated_not_null,
                design_rules=site_app,
                defaults_set_in_migration=defaults_set,
                columns_added_in_plan=added_in_plan,
            )
            for hit in rule_hits(ctx):
                reason, note = _suppression(config, migration, key, hit.code)
                if not reason and not site_app and node in loader.applied_migrations:
                    reason = "already applied, and the app is not the site's code: nothing to change"
                detail = f"{hit.detail}; {note}" if note else hit.detail
                findings.append(
                    Finding(
                        hit.code, hit.severity, key, f"#{number} {op.describe()}", hit.table, detail, reason, hit.advice
                    )
                )
            added_in_plan |= _added_columns(node[0], op, state, connection)
            op.state_forwards(node[0], state)
        if not migration.atomic and len(migration.operations) > 1:
            reason, note = _suppression(config, migration, key, "M019")
            detail = f"{len(migration.operations)} operations outside a transaction" + (f"; {note}" if note else "")
            findings.append(Finding("M019", Severity.INFO, key, "migration", "", detail, reason))
        created_in_plan |= created_in_migration
        reports[node] = MigrationReport(
            app_label=node[0],
            name=node[1],
            atomic=migration.atomic,
            applied=node in loader.applied_migrations,
            irreversible=irreversible_operations(migration),
            findings=findings,
        )
    return SafetyReport(
        alias=alias,
        server_version=facts.server_version,
        migrations=[reports[node] for node in nodes if node in reports],
        analysis_seconds=time.perf_counter() - started,
        thresholds=config,
    )

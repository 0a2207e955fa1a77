"""Raw SQL read with PostgreSQL's own parser, and the analyzer's fixes for what the linter comparison found.

Every statement is graded against the corpus tables (real rows, real statistics): schema-qualified, quoted,
unnamed and multi-statement SQL, the reverse SQL, statements the rules do not know, and the operations that were
misjudged (NOT NULL with db_default=None, stored generated columns, order_with_respect_to, exclusion
constraints, SET NOT NULL on a small table, a database default restored by RunSQL).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.postgres.constraints import ExclusionConstraint
from django.db import migrations, models
from django.db.migrations.graph import MigrationGraph
from django.db.models.functions import Upper

from dbops.migrations_safety.analysis import analyze
from dbops.migrations_safety.catalog import Severity
from tests.migrations_safety.test_rules import (  # noqa: F401 - corpus_tables is a fixture
    THRESHOLDS,
    corpus_tables,
    findings_of,
    initial_migration,
    migration_of,
)

pytestmark = [pytest.mark.database, pytest.mark.django_db, pytest.mark.usefixtures("corpus_tables")]


def sql_findings(sql, reverse_sql="SELECT 1", *, atomic=True):
    return [(f.code, f.severity, f.table) for f in findings_of(migrations.RunSQL(sql, reverse_sql), atomic=atomic)]


# -- the parser path ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sql",
    [
        'CREATE INDEX "bigitem_x" ON "public"."corpus_bigitem" (name)',
        "CREATE INDEX bigitem_x ON public.corpus_bigitem (name)",
        "CREATE INDEX ON corpus_bigitem (name)",  # unnamed
        "create index if not exists bigitem_x on only corpus_bigitem using btree (lower(name))",
    ],
)
def test_sql__an_index_build_is_graded_by_its_tables_live_size_however_it_is_written(sql):
    ((code, severity, table),) = sql_findings(sql)
    assert (code, severity) == ("M005", Severity.BLOCK)  # 20,000 rows
    assert table.endswith("corpus_bigitem")


def test_sql__several_statements_each_graded_with_quotes_and_comments_respected():
    sql = """
        SET lock_timeout = '2s';  -- a comment; with a semicolon
        COMMENT ON TABLE corpus_bigitem IS 'items; all of them';
        CREATE UNIQUE INDEX bigitem_name_u ON corpus_bigitem (name);
        ALTER TABLE corpus_smallitem ADD CONSTRAINT small_check CHECK (id > 0);
    """
    assert sql_findings(sql) == [
        ("M010", Severity.BLOCK, "corpus_bigitem"),
        ("M009", Severity.INFO, "corpus_smallitem"),  # 10 rows
    ]


SAFE_STATEMENTS = [
    "SET lock_timeout = '5s'",
    "SET LOCAL statement_timeout = 0",
    "COMMENT ON COLUMN corpus_bigitem.name IS 'the name'",
    "GRANT SELECT ON corpus_bigitem TO PUBLIC",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE FUNCTION one() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$",
    "CREATE OR REPLACE VIEW big_names AS SELECT name FROM corpus_bigitem",
    "CREATE TABLE corpus_new (id bigint PRIMARY KEY)",
    "CREATE SEQUENCE corpus_seq",
    "CREATE TYPE mood AS ENUM ('ok', 'sad')",
    "ALTER TYPE mood ADD VALUE 'happy'",
    "CREATE SCHEMA IF NOT EXISTS reporting",
    "ALTER TABLE corpus_bigitem ADD COLUMN extra text",
    "ALTER TABLE corpus_bigitem ADD COLUMN seen timestamptz DEFAULT now()",  # stable: no rewrite
    "ALTER TABLE corpus_bigitem ADD COLUMN flag boolean NOT NULL DEFAULT false",
    "ALTER TABLE corpus_bigitem ALTER COLUMN notes SET DEFAULT ''",
    "ALTER TABLE corpus_bigitem ALTER COLUMN notes DROP DEFAULT",
    "ALTER TABLE corpus_bigitem ALTER COLUMN name DROP NOT NULL",
    "ALTER TABLE corpus_bigitem ADD CONSTRAINT big_check CHECK (id > 0) NOT VALID",
    "ALTER TABLE corpus_bigitem VALIDATE CONSTRAINT big_check",
    "ALTER TABLE corpus_bigitem ADD CONSTRAINT big_fk FOREIGN KEY (owner_id) REFERENCES corpus_owner (id) NOT VALID",
    "ALTER TABLE corpus_bigitem ADD CONSTRAINT big_u UNIQUE USING INDEX big_u_idx",
    "ALTER INDEX bigitem_code_idx RENAME TO bigitem_code_index",
    "INSERT INTO corpus_owner (name) VALUES ('x')",
    "SELECT set_config('lock_timeout', '1s', true)",
    "ANALYZE corpus_bigitem",
    "DROP FUNCTION IF EXISTS one()",
    "DROP VIEW IF EXISTS big_names",
]


@pytest.mark.parametrize("sql", SAFE_STATEMENTS)
def test_sql__a_safe_statement_passes_without_a_warning(sql):
    assert sql_findings(sql) == []


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX CONCURRENTLY bigitem_x ON corpus_bigitem (name)",
        "DROP INDEX CONCURRENTLY IF EXISTS bigitem_code_idx",
        "REINDEX INDEX CONCURRENTLY bigitem_code_idx",
    ],
)
def test_sql__concurrently_is_safe_outside_a_transaction_and_blocks_inside_one(sql):
    assert sql_findings(sql, atomic=False) == []
    assert [code for code, _, _ in sql_findings(sql, atomic=True)] == ["M006"]


def test_sql__a_plain_drop_index_is_graded_by_the_table_it_belongs_to():
    assert sql_findings("DROP INDEX bigitem_code_idx") == [("M007", Severity.WARN, "corpus_bigitem")]


def test_sql__reverse_sql_is_read_too_and_only_warns():
    found = findings_of(migrations.RunSQL("SELECT 1", "CREATE INDEX ON corpus_bigitem (notes)"))
    assert [(f.code, f.severity) for f in found] == [("M005", Severity.WARN)]
    assert found[0].detail.startswith("on rollback: ")


def test_sql__what_the_rules_do_not_know_is_named_once():
    found = findings_of(migrations.RunSQL("DO $$ BEGIN END $$; LOCK TABLE corpus_bigitem; DO $$ BEGIN END $$", ""))
    ((code, detail),) = [(f.code, f.detail) for f in found]
    assert code == "M018" and detail.endswith("do not know: DoStmt, LockStmt")


def test_sql__sql_that_does_not_parse_says_so():
    ((code, detail),) = [(f.code, f.detail) for f in findings_of(migrations.RunSQL("SELEC 1", ""))]
    assert code == "M018" and 'syntax error at or near "SELEC"' in detail


def test_sql__data_changes_are_graded_by_the_table_they_touch():
    assert sql_findings("UPDATE corpus_bigitem SET notes = 'x'") == [("M017", Severity.BLOCK, "corpus_bigitem")]
    assert sql_findings("UPDATE corpus_smallitem SET notes = 'x'") == []  # 10 rows are not "large"
    assert sql_findings("UPDATE corpus_bigitem SET notes = 'x'", atomic=False) == []  # batches commit as they go


def test_sql__volatile_and_stored_defaults_rewrite_the_table():
    assert sql_findings("ALTER TABLE corpus_bigitem ADD COLUMN t uuid DEFAULT gen_random_uuid()") == [
        ("M002", Severity.BLOCK, "corpus_bigitem")
    ]
    assert sql_findings("ALTER TABLE corpus_bigitem ADD COLUMN u text GENERATED ALWAYS AS (upper(name)) STORED") == [
        ("M023", Severity.BLOCK, "corpus_bigitem")
    ]
    assert sql_findings("ALTER TABLE corpus_bigitem ADD COLUMN n int NOT NULL") == [
        ("M001", Severity.BLOCK, "corpus_bigitem")
    ]


# -- the misjudged operations -----------------------------------------------------------------------------------------
def test_not_null_with_db_default_none__fails_on_rows_and_is_blocked():
    (finding,) = findings_of(migrations.AddField("bigitem", "rank", models.IntegerField(db_default=None)))
    assert (finding.code, finding.severity) == ("M001", Severity.BLOCK)
    assert "fails on existing rows" in finding.detail


def test_stored_generated_column__is_a_rewrite_not_a_missing_default():
    field = models.GeneratedField(expression=Upper("name"), output_field=models.TextField(), db_persist=True)
    (finding,) = findings_of(migrations.AddField("bigitem", "label", field))
    assert (finding.code, finding.severity) == ("M023", Severity.BLOCK)
    assert findings_of(migrations.AddField("smallitem", "label", field))[0].severity is Severity.INFO


def test_order_with_respect_to__its_not_null_order_column_is_flagged():
    (finding,) = findings_of(migrations.AlterOrderWithRespectTo("bigitem", "owner"))
    assert (finding.code, finding.severity) == ("M001", Severity.WARN)
    assert "column _order: existing rows get 0, then Django drops the DEFAULT" in finding.detail


def test_exclusion_constraint__is_named_as_such():
    constraint = ExclusionConstraint(name="big_excl", expressions=[("name", "=")], index_type="gist")
    (finding,) = findings_of(migrations.AddConstraint("bigitem", constraint))
    assert finding.code == "M024" and finding.rule.title == "exclusion constraint built in place"


def test_set_not_null_on_a_small_table__the_running_code_is_still_warned_about():
    found = {f.code: f.severity for f in findings_of(migrations.AlterField("smallitem", "notes", models.TextField()))}
    assert found == {"M004": Severity.INFO, "M025": Severity.WARN}


def test_database_default_restored_by_runsql_in_the_same_migration__no_false_positive():
    add = migrations.AddField("bigitem", "flag", models.BooleanField(default=False))
    restore = migrations.RunSQL(
        "ALTER TABLE corpus_bigitem ALTER COLUMN flag SET DEFAULT false",
        "ALTER TABLE corpus_bigitem ALTER COLUMN flag DROP DEFAULT",
    )
    assert [f.code for f in findings_of(add)] == ["M001"]
    assert findings_of(add, restore) == []


def test_table_created_earlier_in_the_plan__removing_it_is_info_when_only_the_later_migration_is_reported():
    create = migration_of(
        migrations.CreateModel("Scratch", [("id", models.BigAutoField(primary_key=True))]), name="0002_scratch"
    )
    delete = migration_of(migrations.DeleteModel("Scratch"), name="0003_drop_scratch")
    delete.dependencies = [("corpus", "0002_scratch")]
    graph = MigrationGraph()
    initial = initial_migration()
    for migration in (initial, create, delete):
        graph.add_node(("corpus", migration.name), migration)
    graph.add_dependency(create, ("corpus", "0002_scratch"), ("corpus", "0001_initial"))
    graph.add_dependency(delete, ("corpus", "0003_drop_scratch"), ("corpus", "0002_scratch"))
    loader = SimpleNamespace(
        graph=graph, unmigrated_apps=set(), applied_migrations={("corpus", "0001_initial"): initial}
    )
    report = analyze(nodes=[("corpus", "0003_drop_scratch")], loader=loader, config=THRESHOLDS)
    ((code, severity, detail),) = [(f.code, f.severity, f.detail) for f in report.findings]
    assert (code, severity, detail) == ("M013", Severity.INFO, "created earlier in this plan")


class BuildNameIndex(migrations.operations.base.Operation):
    """A third-party style operation no rule knows: it builds an index through the schema editor."""

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        schema_editor.execute('CREATE INDEX "big_name_custom" ON "corpus_bigitem" ("name")')

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        schema_editor.execute('DROP INDEX "big_name_custom"')


def test_unknown_operation__is_graded_by_the_sql_the_schema_editor_emits():
    ((code, severity, table),) = [(f.code, f.severity, f.table) for f in findings_of(BuildNameIndex())]
    assert (code, severity, table) == ("M005", Severity.BLOCK, "corpus_bigitem")
    comment = migrations.AlterModelTableComment("bigitem", "the items")
    assert findings_of(comment) == []  # COMMENT ON TABLE: catalog only
    assert findings_of(migrations.AlterModelOptions("bigitem", {"ordering": ["name"]})) == []  # state only

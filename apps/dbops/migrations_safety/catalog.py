"""The rules' catalog: each code's title, why it matters and the safe alternative, and the severities.

The codes are stable (reports, suppressions and CI gates name them); `rules` holds the functions that decide when
each applies.
"""

from __future__ import annotations

import dataclasses
import enum


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

"""The safe rewrite: every mechanical finding rewritten as migration code that applies, proven on real tables.

The proof: an index migration on a 300,000-row table while a writer inserts with `lock_timeout`. The original,
atomic, holds the build's SHARE lock until it commits: an insert tried then gives up. The rewrite builds it
CONCURRENTLY: not one insert waits as long as its `lock_timeout`, before, during or after the build.
"""

from __future__ import annotations

import shutil
import sys
import threading

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from dbops.migrations_safety.analysis import analyze
from dbops.migrations_safety.catalog import Severity
from dbops.migrations_safety.rewrites import rewrite_migration, write_rewrite
from dbops.migrations_safety.runner import apply_migrations, rollback_migrations
from tests.conftest import LAB, test_database_connection
from tests.migration_lab.scenarios.indexed import __path__ as indexed_path
from tests.parts.waiting import wait_for

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]
WRITER_LOCK_TIMEOUT_MS = 500
MARKER_KEY = 4242  # tests/migration_lab/scenarios/indexed/0002_item_name_index.py


def rows(count: int, **columns: str) -> None:
    extra = "".join(f", {value}" for value in columns.values())
    names = "".join(f", {name}" for name in columns)
    with test_database_connection() as conn:
        conn.execute(
            f"INSERT INTO migration_lab_item (name{names}) "  # noqa: S608 - fixed test SQL
            f"SELECT 'item ' || g{extra} FROM generate_series(1, {count}) g"
        )
        conn.execute("ANALYZE migration_lab_item")


def use_rewritten(settings, tmp_path, monkeypatch, rewrite, scenario_dir) -> None:
    """Serve the lab app's migrations from a package holding 0001 and the rewrite's files (not the original)."""
    package = tmp_path / "lab_rewritten"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(scenario_dir / "0001_initial.py", package / "0001_initial.py")
    write_rewrite(rewrite, package)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in [name for name in sys.modules if name.split(".")[0] == "lab_rewritten"]:
        sys.modules.pop(module)  # another test's rewrite may have the same migration names
    settings.MIGRATION_MODULES = {LAB: "lab_rewritten"}
    return package


# -- every rewrite applies -------------------------------------------------------------------------------------------
def test_rewrite__each_mechanical_finding_gets_its_safe_form_and_the_result_applies(
    lab, settings, tmp_path, monkeypatch
):
    from pathlib import Path

    lab("mixed")
    apply_migrations(app_label=LAB, migration_name="0001")
    rows(20_000, note="'n'", code="'c' || g")
    original = analyze(app_label=LAB).migrations[0]
    assert {f.code for f in original.findings if f.severity >= Severity.WARN} >= {
        "M001", "M004", "M005", "M009", "M010", "M011",
    }  # fmt: skip

    rewrite = rewrite_migration(LAB, "0002")
    # In order: the transactional part, the concurrent builds, the state-only removal, the validations, then the
    # SET NOT NULL on validated ground in a transaction of its own (a scan after it would hold its lock).
    assert [m.name for m in rewrite.now] == [f"0002_tighten_{letter}" for letter in "abcde"]
    assert [m.atomic for m in rewrite.now] == [True, False, True, True, True]
    assert rewrite.now[-1].replaces == [(LAB, "0002_tighten")] and rewrite.later.name == "0002_tighten_drop"
    source = dict(rewrite.files())
    assert "AddIndexConcurrently" in source["0002_tighten_b.py"] and "atomic = False" in source["0002_tighten_b.py"]
    assert "AddConstraintNotValid" in source["0002_tighten_a.py"] and "db_default=False" in source["0002_tighten_a.py"]
    assert "ValidateConstraint" in source["0002_tighten_d.py"] and "AlterField" not in source["0002_tighten_d.py"]
    assert "ValidateConstraint" not in source["0002_tighten_e.py"] and "AlterField" in source["0002_tighten_e.py"]

    scenario = Path(__import__("tests.migration_lab.scenarios.mixed", fromlist=["x"]).__path__[0])
    package = use_rewritten(settings, tmp_path, monkeypatch, rewrite, scenario)
    rewritten = analyze(app_label=LAB)
    assert {f.code for f in rewritten.findings if f.severity >= Severity.WARN} <= {"M025"}  # no mechanical one left
    outcome = apply_migrations(app_label=LAB)
    assert outcome.run.status == "succeeded", outcome.run.error

    with test_database_connection() as conn:
        constraints = dict(
            conn.execute(
                "SELECT conname, contype::text || convalidated::text FROM pg_constraint "
                "WHERE conrelid = 'migration_lab_item'::regclass AND contype IN ('c', 'u')"
            ).fetchall()
        )
        assert constraints == {"item_name_not_blank": "ctrue", "item_code_uniq": "utrue"}  # the NOT NULL check went
        columns = dict(
            conn.execute(
                "SELECT column_name, is_nullable || ':' || coalesce(column_default, '') "
                "FROM information_schema.columns WHERE table_name = 'migration_lab_item'"
            ).fetchall()
        )
        assert columns["note"] == "NO:" and columns["flag"] == "NO:false" and "legacy" in columns  # dropped later
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'item_name_idx'::regclass").fetchone()

    # The later release drops the column the code no longer uses.
    shutil.copy(package / "later" / "0002_tighten_drop.py", package / "0002_tighten_drop.py")
    sys.modules.pop("lab_rewritten.0002_tighten_drop", None)
    apply_migrations(app_label=LAB, allow_unsafe=True, reason="the code stopped using legacy a release ago")
    with test_database_connection() as conn:
        gone = conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'migration_lab_item' "
            "AND column_name = 'legacy'"
        ).fetchone()
        assert gone == (0,)


def test_rewrite__a_volatile_default_is_backfilled_in_batches_and_the_column_ends_as_written(
    lab, settings, tmp_path, monkeypatch
):
    from pathlib import Path

    lab("volatile")
    apply_migrations(app_label=LAB, migration_name="0001")
    rows(12_000)
    assert [f.code for f in analyze(app_label=LAB).findings] == ["M002"]  # a rewrite of every row under the lock

    rewrite = rewrite_migration(LAB, "0002")
    assert [m.atomic for m in rewrite.now] == [True, False, True, True]
    assert (
        "functools.partial(dbops.migrations_safety.backfill.backfill_in_batches"
        in dict(rewrite.files())["0002_item_token_b.py"]
    )
    scenario = Path(__import__("tests.migration_lab.scenarios.volatile", fromlist=["x"]).__path__[0])
    use_rewritten(settings, tmp_path, monkeypatch, rewrite, scenario)
    assert [f for f in analyze(app_label=LAB).findings if f.severity >= Severity.WARN] == []
    assert apply_migrations(app_label=LAB).run.status == "succeeded"
    with test_database_connection() as conn:
        filled, distinct = conn.execute("SELECT count(token), count(DISTINCT token) FROM migration_lab_item").fetchone()
        assert filled == distinct == 12_000  # every existing row, each its own value
        nullable, default = conn.execute(
            "SELECT is_nullable, column_default FROM information_schema.columns "
            "WHERE table_name = 'migration_lab_item' AND column_name = 'token'"
        ).fetchone()
        assert (nullable, default) == ("NO", "gen_random_uuid()")
        conn.execute("INSERT INTO migration_lab_item (name) VALUES ('new')")  # the default serves new rows
        checks = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'migration_lab_item'::regclass AND contype = 'c'"
        ).fetchone()
        assert checks == (0,)  # the helper check was dropped


def table_schema(conn, table: str) -> dict:
    """Columns, constraints and indexes of `table` as the catalog describes them (what pg_dump would print)."""
    return {
        "columns": conn.execute(
            "SELECT column_name, data_type, is_nullable, coalesce(column_default, '') FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY column_name",
            [table],
        ).fetchall(),
        "constraints": conn.execute(
            "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE conrelid = %s::regclass "
            "ORDER BY conname",
            [table],
        ).fetchall(),
        "indexes": conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname", [table]
        ).fetchall(),
    }


def test_rewrite__not_null_fills_nulls_as_django_does_and_keeps_the_foreign_key(lab, settings, tmp_path, monkeypatch):
    """Django's AlterField fills NULLs with the new default before SET NOT NULL and re-adds a changed foreign key.

    The rewrite fills the NULLs too (else VALIDATE fails on them) and leaves the key alone (no second validation).
    """
    from pathlib import Path

    lab("notnullfk")
    apply_migrations(app_label=LAB, migration_name="0001")
    with test_database_connection() as conn:
        conn.execute("INSERT INTO migration_lab_owner DEFAULT VALUES")
        conn.execute(
            "INSERT INTO migration_lab_item (name, owner_id, rank) SELECT 'item ' || g, "
            "(SELECT min(id) FROM migration_lab_owner), CASE WHEN g % 3 = 0 THEN NULL ELSE g END "
            "FROM generate_series(1, 60000) g"
        )
        conn.execute("ANALYZE migration_lab_item")
    findings = {(f.code, f.operation.split()[0]) for f in analyze(app_label=LAB).findings}
    assert {("M004", "#1"), ("M008", "#1"), ("M004", "#2")} <= findings

    # The original as Django runs it, for the schema to match; then back to 0001 with the NULLs as they were.
    assert apply_migrations(app_label=LAB, allow_unsafe=True, reason="reference run").run.status == "succeeded"
    with test_database_connection() as conn:
        original = table_schema(conn, "migration_lab_item")
        assert conn.execute("SELECT count(*) FROM migration_lab_item WHERE rank = 0").fetchone() == (20_000,)
    assert rollback_migrations(app_label=LAB, target="0001_initial").run.status == "succeeded"
    with test_database_connection() as conn:
        conn.execute("UPDATE migration_lab_item SET rank = NULL WHERE rank = 0")
        (foreign_key,) = conn.execute(
            "SELECT oid FROM pg_constraint WHERE conrelid = 'migration_lab_item'::regclass AND contype = 'f'"
        ).fetchone()

    rewrite = rewrite_migration(LAB, "0002")
    assert any("existing NULLs set to the default 0 first" in change for change in rewrite.changes)
    assert any("SET NOT NULL alone" in change for change in rewrite.changes)
    scenario = Path(__import__("tests.migration_lab.scenarios.notnullfk", fromlist=["x"]).__path__[0])
    use_rewritten(settings, tmp_path, monkeypatch, rewrite, scenario)
    assert [f for f in analyze(app_label=LAB).findings if f.severity >= Severity.BLOCK] == []
    outcome = apply_migrations(app_label=LAB)
    assert outcome.run.status == "succeeded", outcome.run.error
    with test_database_connection() as conn:
        assert table_schema(conn, "migration_lab_item") == original
        assert conn.execute("SELECT count(*) FROM migration_lab_item WHERE rank = 0").fetchone() == (20_000,)
        kept = conn.execute(
            "SELECT oid FROM pg_constraint WHERE conrelid = 'migration_lab_item'::regclass AND contype = 'f'"
        ).fetchone()
        assert kept == (foreign_key,)  # the same constraint: never dropped, never validated again


def test_rewrite__says_what_it_keeps_and_names_the_models_line_for_db_default(lab):
    lab("indexlater")
    apply_migrations(app_label=LAB, migration_name="0001")
    rows(20_000)
    rewrite = rewrite_migration(LAB, "0002")
    (kept,) = rewrite.left
    assert kept.startswith("M005 index built without CONCURRENTLY (#2 Alter field rank on item): kept as written")
    (change,) = rewrite.changes
    assert "write it in models.py as well" in change
    assert "rank = models.IntegerField(db_default=0, default=0)" in change


def test_report_and_command__show_and_write_the_safe_form(lab, capsys, tmp_path):
    lab("indexed")
    apply_migrations(app_label=LAB, migration_name="0001")
    rows(20_000)
    call_command("migration_report", LAB)
    out = capsys.readouterr().out
    assert "safe form (2 migration(s); manage.py migration_rewrite migration_lab 0002_item_name_index" in out
    assert "# 0002_item_name_index_a  (atomic = False)" in out and "AddIndexConcurrently(" in out

    call_command("migration_rewrite", LAB, "0002", "--output", str(tmp_path / "review"))
    written = sorted(p.name for p in (tmp_path / "review").iterdir())
    assert written == ["0002_item_name_index_a.py", "0002_item_name_index_b.py"]
    with pytest.raises(Exception, match="exists"):  # never over a file already there
        call_command("migration_rewrite", LAB, "0002", "--output", str(tmp_path / "review"))


# -- the proof: a concurrent writer ---------------------------------------------------------------------------------
class Writer:
    """Insert rows one by one, each with lock_timeout, until stopped; count the inserts that gave up waiting."""

    def __init__(self) -> None:
        self.conn = test_database_connection()
        self.conn.execute(f"SET lock_timeout = '{WRITER_LOCK_TIMEOUT_MS}ms'")
        self.inserted = self.gave_up = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def insert(self) -> bool:
        try:
            self.conn.execute("INSERT INTO migration_lab_item (name) VALUES ('written during the migration')")
        except psycopg.errors.LockNotAvailable:
            self.gave_up += 1
            return False
        self.inserted += 1
        return True

    def run(self) -> None:
        while not self.stop.is_set():
            self.insert()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=60)
        self.conn.close()


def migration_waiting_at_marker() -> bool:
    with test_database_connection() as conn:
        return conn.execute(
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s",
            [MARKER_KEY],
        ).fetchone()[0]


def assertion(condition: bool) -> None:
    assert condition


def apply_stopping_at_marker(at_marker) -> dict:
    """Apply the lab's migrations while holding the marker lock; call `at_marker` once the run waits there."""
    marker = test_database_connection()
    try:
        marker.execute("SELECT pg_advisory_lock(%s)", [MARKER_KEY])
        thread, result = apply_in_thread()
        try:
            wait_for(migration_waiting_at_marker, timeout=120)
            at_marker()
        finally:
            marker.execute("SELECT pg_advisory_unlock(%s)", [MARKER_KEY])
            thread.join(timeout=120)
    finally:
        marker.close()
    return result


def apply_in_thread():
    result = {}

    def run() -> None:
        try:
            result["outcome"] = apply_migrations(app_label=LAB, backup=False)
        except Exception as exc:  # reported by the assertion below
            result["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_rewrite__on_300k_rows_a_concurrent_writer_never_waits_its_lock_timeout_where_the_original_blocks_it(
    lab, settings, tmp_path, monkeypatch
):
    from pathlib import Path

    lab("indexed")
    apply_migrations(app_label=LAB, migration_name="0001")
    rows(300_000)

    # The original: while it sits at the marker, still inside its transaction, the build's SHARE lock is held.
    writer = Writer()
    try:
        result = apply_stopping_at_marker(lambda: assertion(writer.insert() is False))  # it gives up waiting
    finally:
        writer.close()
    assert result["outcome"].run.status == "succeeded", result
    rollback_migrations(app_label=LAB, target="0001", backup=False)

    # The rewrite, with the writer inserting the whole time.
    rewrite = rewrite_migration(LAB, "0002")
    use_rewritten(settings, tmp_path, monkeypatch, rewrite, Path(indexed_path[0]))
    writer = Writer()
    try:
        writer.thread.start()

        def writes_go_on() -> None:  # the index is built (CONCURRENTLY, outside a transaction): inserts continue
            before = writer.inserted
            wait_for(lambda: writer.inserted > before, timeout=60)

        result = apply_stopping_at_marker(writes_go_on)
    finally:
        writer.close()
    assert result["outcome"].run.status == "succeeded", result
    assert writer.gave_up == 0 and writer.inserted > 0  # no insert waited as long as its lock_timeout
    with test_database_connection() as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'item_name_idx'::regclass").fetchone()

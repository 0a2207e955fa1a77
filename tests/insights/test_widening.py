"""I002's fix on real rows: an integer key near its maximum widened to bigint by the migrations dbops writes.

The lab app's Owner has an AutoField (integer) key with 30,000 rows, its sequence at 2,000,000,000, and Item's
foreign key to it. Big (>= MIGRATION_SAFETY_WARN_ROWS): the five-step plan, graded by dbops' own report, applied by
the guarded runner while rows keep their keys, the foreign key enforced and validated again, new rows numbered after
the old sequence, and the finding gone. Small: one AlterField.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import pytest

from dbops.insights.fixes import write_fix_migrations
from dbops.insights.service import run_insights
from dbops.migrations_safety.analysis import analyze
from dbops.migrations_safety.catalog import Severity
from dbops.migrations_safety.runner import apply_migrations
from tests.conftest import LAB, test_database_connection
from tests.migration_lab.scenarios.widen import __path__ as widen_path

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def owners_near_the_maximum(owners: int) -> object:
    apply_migrations(app_label=LAB, migration_name="0001")
    with test_database_connection() as conn:
        conn.execute(
            "INSERT INTO migration_lab_owner (name) SELECT 'owner ' || g FROM generate_series(1, %s) g", [owners]
        )
        conn.execute("INSERT INTO migration_lab_item (owner_id) SELECT id FROM migration_lab_owner")
        conn.execute("SELECT setval(pg_get_serial_sequence('migration_lab_owner', 'id'), 2000000000)")
        conn.execute("ANALYZE migration_lab_owner, migration_lab_item")
    [finding] = [
        i for i in run_insights(codes={"I002"}).insights if i.object.startswith("sequence public.migration_lab")
    ]
    assert finding.detail["key"]["referenced_by"][0]["table"] == "public.migration_lab_item"
    # The lab app has migrations and no models.py, so no installed model maps the table: name it as a site's would.
    return dataclasses.replace(finding, model="migration_lab.Owner.id")


def serve_with_fixes(settings, tmp_path, monkeypatch, written) -> None:
    """Serve the lab app's migrations from a package holding 0001 and the written fixes."""
    package = tmp_path / "lab_widened"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(Path(widen_path[0]) / "0001_initial.py", package / "0001_initial.py")
    for fix in written:
        (package / fix.path.name).write_text(fix.path.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in [name for name in sys.modules if name.split(".")[0] == "lab_widened"]:
        sys.modules.pop(module)
    settings.MIGRATION_MODULES = {LAB: "lab_widened"}


def key_type(conn) -> str:
    return conn.execute(
        "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 'migration_lab_owner'::regclass "
        "AND attname = 'id'"
    ).fetchone()[0]


def test_a_big_table_gets_the_five_step_plan_and_keeps_every_row_and_key(lab, settings, tmp_path, monkeypatch):
    lab("widen")
    finding = owners_near_the_maximum(30_000)
    written = write_fix_migrations([finding], tmp_path / "fixes")
    assert [f.path.name.split("_bigint_")[-1] for f in written] == [
        "1_add.py", "2_backfill.py", "3_prove.py", "4_swap.py", "5_validate.py"
    ]  # fmt: skip
    assert "public.migration_lab_item.owner_id" in written[0].note  # still integer: said, not hidden
    serve_with_fixes(settings, tmp_path, monkeypatch, written)

    graded = analyze(app_label=LAB).findings
    assert [f for f in graded if f.severity >= Severity.BLOCK] == [], graded
    # What the report asks a reviewer to look at: the scratch column a rollback drops, and the swap (irreversible,
    # a DO block the rules cannot read statement by statement); nothing in the backfill, the proof or the validation.
    assert {(f.code, f.migration.rpartition("_bigint_")[2]) for f in graded} == {
        ("M011", "1_add"), ("M016", "4_swap"), ("M018", "4_swap")
    }  # fmt: skip
    first = apply_migrations(app_label=LAB, migration_name=written[0].path.stem, allow_unsafe=True, reason="plan")
    assert first.run.status == "succeeded", first.run.error
    with test_database_connection() as conn:  # the site keeps writing between the steps: the trigger copies keys
        conn.execute("INSERT INTO migration_lab_owner (name) SELECT 'meanwhile ' || g FROM generate_series(1, 10) g")
        conn.execute("UPDATE migration_lab_owner SET name = 'renamed' WHERE id <= 10")
        assert conn.execute(
            "SELECT count(*) FROM migration_lab_owner WHERE id_bigint IS NOT DISTINCT FROM id"
        ).fetchone() == (20,)  # the 10 new rows and the 10 updated ones; the backfill copies the rest
        before = conn.execute("SELECT count(*), sum(id) FROM migration_lab_owner").fetchone()
        owner_of_items = conn.execute("SELECT sum(owner_id) FROM migration_lab_item").fetchone()

    outcome = apply_migrations(app_label=LAB, allow_unsafe=True, reason="the key widening plan")
    assert outcome.run.status == "succeeded", outcome.run.error

    with test_database_connection() as conn:
        assert key_type(conn) == "bigint"
        assert conn.execute("SELECT count(*), sum(id) FROM migration_lab_owner").fetchone() == before
        assert conn.execute("SELECT sum(owner_id) FROM migration_lab_item").fetchone() == owner_of_items
        primary = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'migration_lab_owner'::regclass AND contype = 'p'"
        ).fetchone()
        assert primary == ("migration_lab_owner_pkey",)
        (new_id,) = conn.execute("INSERT INTO migration_lab_owner (name) VALUES ('new') RETURNING id").fetchone()
        assert new_id == 2_000_000_011  # numbered after the old sequence (and the 10 meanwhile), not after max(id)
        assert conn.execute(
            "SELECT bool_and(convalidated) FROM pg_constraint WHERE conrelid = 'migration_lab_item'::regclass "
            "AND contype = 'f'"
        ).fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'dbops_widen%%'").fetchone() == (0,)
        with pytest.raises(Exception, match="foreign key"):
            conn.execute("INSERT INTO migration_lab_item (owner_id) VALUES (-1)")
    assert not [i for i in run_insights(codes={"I002"}).insights if "migration_lab" in i.object]


def test_a_small_table_gets_one_alter_field(lab, settings, tmp_path, monkeypatch):
    lab("widen")
    finding = owners_near_the_maximum(100)
    written = write_fix_migrations([finding], tmp_path / "fixes")
    assert [f.path.name for f in written] == ["0002_dbops_i002_id_bigint.py"]
    assert "AlterField" in written[0].path.read_text() and "BigAutoField" in written[0].path.read_text()
    serve_with_fixes(settings, tmp_path, monkeypatch, written)
    assert [f for f in analyze(app_label=LAB).findings if f.severity >= Severity.WARN] == []
    assert apply_migrations(app_label=LAB).run.status == "succeeded"
    with test_database_connection() as conn:
        assert key_type(conn) == "bigint"
        assert conn.execute(
            "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 'migration_lab_item'::regclass "
            "AND attname = 'owner_id'"
        ).fetchone() == ("bigint",)  # Django's AlterField widens the foreign key column with it

"""Guarded migrate and rollback on real migrations, a real lock held by another session, a real failing step."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection
from django.db.migrations.recorder import MigrationRecorder

from dbops.exceptions import MigrationFailed, MigrationRefused, MigrationSelectionError
from dbops.migrations_safety.runner import MIGRATION_LOCK_KEY, apply_migrations, rollback_migrations
from dbops.models import BackupRecord, MigrationRun
from tests.conftest import LAB, test_database_connection

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def columns() -> set[str]:
    with test_database_connection() as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'migration_lab_item'"
        ).fetchall()
    return {name for (name,) in rows}


def applied() -> list[str]:
    return sorted(name for app, name in MigrationRecorder(connection).applied_migrations() if app == LAB)


def test_apply__runs_the_plan_and_records_each_step(lab):
    lab("guarded")
    outcome = apply_migrations(app_label=LAB, reason="release 42")
    run = MigrationRun.objects.get(pk=outcome.run.pk)
    assert run.status == "succeeded" and run.kind == "apply" and run.reason == "release 42"
    assert run.plan == [f"{LAB}.0001_initial", f"{LAB}.0002_item_flag"]
    assert [(s["migration"], s["outcome"], s["attempts"]) for s in run.migrations] == [
        (f"{LAB}.0001_initial", "applied", 1),
        (f"{LAB}.0002_item_flag", "applied", 1),
    ]
    assert all(s["seconds"] >= 0 for s in run.migrations) and run.duration_seconds > 0
    assert run.requested_by and run.host and run.findings == []
    assert {"id", "name", "flag"} <= columns()
    with connection.cursor() as cursor:  # the session guards are reset: the pool's query timeout is back
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"


def test_lock_guard__held_lock_aborts_within_the_lock_timeout_and_changes_nothing(lab):
    lab("guarded")
    apply_migrations(app_label=LAB, migration_name="0001")
    with test_database_connection(autocommit=False) as holder:
        holder.execute("SELECT count(*) FROM migration_lab_item")  # an open transaction keeps ACCESS SHARE
        # The holder never lets go while the migration runs: only lock_timeout can end the attempts.
        with pytest.raises(MigrationFailed) as failure:
            apply_migrations(app_label=LAB)
        holder.rollback()
    message = str(failure.value)
    assert f"{LAB}.0002_item_flag failed" in message and "lock_timeout (300 ms)" in message
    assert "2 attempt(s)" in message and f"the database is at {LAB}.0001_initial" in message
    assert "flag" not in columns() and applied() == ["0001_initial"]
    run = MigrationRun.objects.order_by("-pk").first()
    assert run.status == "failed" and run.error == message
    assert run.migrations[-1]["outcome"] == "failed" and run.migrations[-1]["attempts"] == 2


def release_after_a_lock_wait_ends(holder, table: str, deadline: float = 120.0) -> None:
    """Roll `holder` back once some session has waited for a lock on `table` and stopped waiting."""
    waiting = (
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE NOT l.granted AND c.relname = %s"
    )
    give_up = time.monotonic() + deadline
    with test_database_connection() as watcher:
        for wanted in (True, False):
            while (watcher.execute(waiting, [table]).fetchone()[0] > 0) != wanted and time.monotonic() < give_up:
                time.sleep(0.01)
    holder.rollback()


def test_lock_guard__retry_succeeds_once_the_lock_is_released(lab, settings):
    lab("guarded")
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS, migrations=dataclasses.replace(settings.DBOPS.migrations, lock_retries=5)
    )
    apply_migrations(app_label=LAB, migration_name="0001")
    with test_database_connection(autocommit=False) as holder:
        holder.execute("SELECT count(*) FROM migration_lab_item")
        # Release only once an attempt has waited for the lock and given up: however slow this machine is,
        # the migration must have met the lock and retried.
        release = threading.Thread(target=release_after_a_lock_wait_ends, args=(holder, "migration_lab_item"))
        release.start()
        outcome = apply_migrations(app_label=LAB)
        release.join()
    step = outcome.run.migrations[-1]
    assert outcome.run.status == "succeeded" and step["outcome"] == "applied" and step["attempts"] >= 2
    assert "flag" in columns()


def test_failure_mid_plan__stops_at_the_last_good_migration_and_says_so(lab):
    lab("midfail")
    with pytest.raises(MigrationFailed) as failure:
        apply_migrations(app_label=LAB)
    message = str(failure.value)
    assert f"{LAB}.0003_broken failed" in message and "division by zero" in message
    assert f"the database is at {LAB}.0002_item_note" in message
    assert applied() == ["0001_initial", "0002_item_note"]
    assert "note" in columns() and "tag" not in columns()
    run = MigrationRun.objects.order_by("-pk").first()
    assert [s["outcome"] for s in run.migrations] == ["applied", "applied", "failed"]
    assert failure.value.outcome.run.pk == run.pk


def test_blocking_findings__refused_unless_allowed_with_a_reason(lab):
    lab("unsafe")
    apply_migrations(app_label=LAB, migration_name="0001")
    with pytest.raises(MigrationRefused) as refusal:
        apply_migrations(app_label=LAB)
    assert "M011" in str(refusal.value) and "name" in columns()
    refused = MigrationRun.objects.order_by("-pk").first()
    assert refused.status == "refused" and refused.findings[0]["code"] == "M011"
    with pytest.raises(MigrationSelectionError, match="needs --reason"):
        apply_migrations(app_label=LAB, allow_unsafe=True)
    outcome = apply_migrations(app_label=LAB, allow_unsafe=True, reason="no code reads name since release 41")
    assert outcome.run.status == "succeeded" and outcome.run.allowed_unsafe and "name" not in columns()


def test_advisory_lock__a_second_run_is_refused(lab):
    lab("guarded")
    with test_database_connection() as other_deploy:
        other_deploy.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        with pytest.raises(MigrationRefused, match="another migration run holds the lock"):
            apply_migrations(app_label=LAB)
    assert applied() == []


def test_rollback__refuses_an_irreversible_step_and_names_it(lab):
    lab("rollback")
    apply_migrations(app_label=LAB)
    with pytest.raises(MigrationRefused) as refusal:
        rollback_migrations(app_label=LAB, target="0001")
    assert f"{LAB}.0003_backfill operation #1 Raw Python operation" in str(refusal.value)
    assert applied() == ["0001_initial", "0002_item_note", "0003_backfill"] and "note" in columns()
    assert MigrationRun.objects.order_by("-pk").first().status == "refused"


def test_rollback__dry_run_shows_the_plan_then_the_rollback_runs(lab):
    lab("rollback")
    apply_migrations(app_label=LAB, migration_name="0002")
    plan = rollback_migrations(app_label=LAB, target="0001", dry_run=True)
    assert [(s.migration, s.backwards) for s in plan.plan] == [(f"{LAB}.0002_item_note", True)]
    assert plan.plan[0].destroys[0].startswith("drops migration_lab_item.note")
    assert "note" in columns() and plan.run.pk is None
    outcome = rollback_migrations(app_label=LAB, target="0001", reason="bad release")
    assert outcome.run.kind == "rollback" and outcome.run.status == "succeeded"
    assert "note" not in columns() and applied() == ["0001_initial"]
    with pytest.raises(MigrationSelectionError, match="ahead of the database"):
        rollback_migrations(app_label=LAB, target="0002")


@pytest.mark.system
def test_pre_migration_backup__taken_when_backups_are_enabled(lab, settings, tmp_path):
    lab("guarded")
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS, migrations=dataclasses.replace(settings.DBOPS.migrations, backup=True)
    )
    settings.STORAGES = {
        **settings.STORAGES,
        "dbbackup": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    outcome = apply_migrations(app_label=LAB)
    backup = BackupRecord.objects.get(pk=outcome.run.backup_id)
    assert backup.trigger == "pre_migration" and backup.status == "succeeded" and backup.size_bytes > 0


def test_commands__report_exit_codes_and_json(lab, capsys):
    lab("unsafe")
    call_command("migration_apply", LAB, "0001", "--no-backup")
    capsys.readouterr()
    with pytest.raises(CommandError) as blocked:
        call_command("migration_report", LAB, "--json")
    assert blocked.value.returncode == 1
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["block"] == 1 and report["migrations"][0]["migration"] == f"{LAB}.0002_remove_name"
    call_command("migration_report", LAB, "0001", "--fail-on", "block", "--brief")  # one applied migration: clean
    with pytest.raises(CommandError) as refused:
        call_command("migration_apply", LAB, "--no-backup")
    assert refused.value.returncode == 1
    call_command("migration_apply", LAB, "--dry-run", "--allow-unsafe", "--reason", "planning")
    assert "name" in columns()
    with pytest.raises(CommandError) as unknown:
        call_command("migration_report", "no_such_app")
    assert unknown.value.returncode == 2


def test_status_endpoint_and_admin_show_the_last_run(lab, admin_client):
    lab("guarded")
    outcome = apply_migrations(app_label=LAB)
    client = admin_client
    status = client.get("/health/database/migrations/status").json()
    assert status["last_run"]["id"] == outcome.run.pk and status["last_run"]["status"] == "succeeded"
    assert status["apps"][LAB]["applied"] == ["0001_initial", "0002_item_flag"]
    changelist = client.get("/admin/dbops/migrationrun/")
    assert changelist.status_code == 200 and b"migration_lab" in changelist.content
    detail = client.get(f"/admin/dbops/migrationrun/{outcome.run.pk}/change/")
    assert detail.status_code == 200 and b"0002_item_flag" in detail.content and b"attempts" in detail.content


def test_rollback__dry_run_predicts_a_not_null_column_it_cannot_re_add_and_refuses(lab):
    lab("unsafe")
    apply_migrations(app_label=LAB, migration_name="0001")
    with test_database_connection() as conn:
        conn.execute("INSERT INTO migration_lab_item (name) VALUES ('a'), ('b')")
    apply_migrations(app_label=LAB, allow_unsafe=True, reason="name is no longer read")

    with pytest.raises(MigrationRefused, match="unapplying would fail") as dry_run:  # the plan says it, up front
        rollback_migrations(app_label=LAB, target="0001", dry_run=True)
    (step,) = dry_run.value.outcome.plan
    assert "re-adds NOT NULL column migration_lab_item.name" in step.will_fail[0]
    with pytest.raises(MigrationRefused, match="unapplying would fail"):
        rollback_migrations(app_label=LAB, target="0001")
    assert applied() == ["0001_initial", "0002_remove_name"]  # nothing was tried


def test_rollback__an_empty_table_gets_its_not_null_column_back(lab):
    lab("unsafe")
    apply_migrations(app_label=LAB, allow_unsafe=True, reason="empty table")
    assert rollback_migrations(app_label=LAB, target="0001", dry_run=True).plan[0].will_fail == ()
    assert rollback_migrations(app_label=LAB, target="0001").run.status == "succeeded"


def test_rollback__a_many_to_many_field_names_the_join_table_it_drops(lab):
    lab("m2m")
    apply_migrations(app_label=LAB)
    with test_database_connection() as conn:
        conn.execute("INSERT INTO migration_lab_item (name) SELECT 'item ' || g FROM generate_series(1, 500) g")
        conn.execute("ANALYZE migration_lab_item")
    plan = rollback_migrations(app_label=LAB, target="0001", dry_run=True)
    (dropped,) = plan.plan[0].destroys
    assert dropped.startswith("drops migration_lab_item_related ")  # the join table, not item.related
    assert "500" not in dropped  # nor the model table's size


def test_not_null_with_db_default_none__migrate_fails_on_rows_and_migration_apply_refuses_first(lab):
    lab("nulldefault")
    apply_migrations(app_label=LAB, migration_name="0001")
    with test_database_connection() as conn:
        conn.execute("INSERT INTO migration_lab_item (name) VALUES ('a'), ('b')")
    with pytest.raises(MigrationRefused, match="M001"):
        apply_migrations(app_label=LAB)
    with pytest.raises(IntegrityError, match="contains null values"):  # what plain migrate does with it
        call_command("migrate", LAB, verbosity=0)
    assert applied() == ["0001_initial"]


def test_stored_generated_column__applies_on_a_table_with_rows_and_is_reported_as_a_rewrite(lab):
    lab("generated")
    apply_migrations(app_label=LAB, migration_name="0001")
    with test_database_connection() as conn:
        conn.execute("INSERT INTO migration_lab_item (name) SELECT 'item ' || g FROM generate_series(1, 2000) g")
        conn.execute("ANALYZE migration_lab_item")
    outcome = apply_migrations(app_label=LAB)
    assert outcome.run.status == "succeeded"
    assert [f.code for f in outcome.report.findings] == ["M023"]  # the rewrite, not a missing default
    with test_database_connection() as conn:
        assert conn.execute("SELECT label FROM migration_lab_item ORDER BY id LIMIT 1").fetchone() == ("ITEM 1",)

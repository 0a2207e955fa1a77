"""Backups, verification, restore and retention against the real cluster and real pg_dump/pg_restore."""

from __future__ import annotations

import dataclasses
import datetime
import os
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from dbops.backups import logical as backups
from dbops.exceptions import BackupError, RestoreRefused
from dbops.health.backups import backup_findings
from dbops.models import BackupRecord, RestoreRecord
from tests.backups.conftest import content_hashes, direct
from tests.factories import BackupRecordFactory, UserFactory

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("backup_dir")]


@pytest.mark.smoke  # also on the second Django target
def test_backup__round_trip_restores_every_table_exactly():
    UserFactory.create_batch(25)
    original = content_hashes()
    record = backups.take_backup()
    assert record.status == BackupRecord.Status.SUCCEEDED
    assert record.row_counts["public.auth_user"] == 25
    assert len(record.sha256) == 64 and record.size_bytes > 0

    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.filter(pk__in=User.objects.values("pk")[:10]).delete()
    User.objects.update(first_name="changed")
    UserFactory.create_batch(3)
    changed = content_hashes()
    assert changed != original

    restore = backups.restore_backup(record, requested_by="test")
    assert restore.status == RestoreRecord.Status.SUCCEEDED
    assert content_hashes() == original
    # dbops' history is the present's: the safety backup and this restore are still recorded.
    safety = BackupRecord.objects.get(pk=restore.safety_backup_id)
    assert safety.trigger == BackupRecord.Trigger.PRE_RESTORE
    assert RestoreRecord.objects.filter(pk=restore.pk, status="succeeded").exists()

    # Restoring an older backup is undone from the safety backup.
    backups.restore_backup(safety, requested_by="test")
    assert content_hashes() == changed


def test_verify__passes_and_records_details():
    UserFactory.create_batch(5)
    record = backups.verify_backup(backups.take_backup())
    assert record.verification == BackupRecord.Verification.PASSED
    assert record.verified_at is not None
    assert record.verification_details["rows"] == sum(record.row_counts.values())
    with direct() as conn:
        leftovers = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops_verify_%'").fetchone()[0]
    assert leftovers == 0  # the scratch database is dropped


def flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def replace_with_other_backup(path):
    other = backups.take_backup()
    path.write_bytes((path.parent / other.filename).read_bytes())


@pytest.mark.parametrize("damage", [flip_one_byte, truncate, replace_with_other_backup])
def test_damaged_backup__fails_verification_and_restore_refuses(damage, backup_dir):
    UserFactory.create_batch(5)
    record = backups.take_backup()
    damage(backup_dir / record.filename)
    UserFactory.create_batch(2)
    live = content_hashes()

    record = backups.verify_backup(record)
    assert record.verification == BackupRecord.Verification.FAILED
    error = record.verification_details["error"]
    assert ("truncated or replaced" in error) or ("sha256" in error and "changed after the backup" in error)

    with pytest.raises(RestoreRefused, match="refused"):
        backups.restore_backup(record)
    assert content_hashes() == live
    restore = RestoreRecord.objects.get(backup=record)
    assert restore.status == RestoreRecord.Status.REFUSED
    assert restore.safety_backup is None


def test_damaged_but_same_checksum_is_caught_by_pg_restore(backup_dir):
    """A file corrupted at dump time has a matching checksum: the scratch restore still catches it."""
    record = backups.take_backup()
    path = backup_dir / record.filename
    truncate(path)
    import hashlib

    record.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    record.size_bytes = path.stat().st_size
    record.save()
    record = backups.verify_backup(record)
    assert record.verification == BackupRecord.Verification.FAILED
    assert record.verification_details["error"].startswith("pg_restore failed:")


def test_backup_commands__json_and_exit_codes(capsys):
    import json

    call_command("backup", "--json")
    created = json.loads(capsys.readouterr().out)
    assert created["status"] == "succeeded"
    call_command("backup_verify", "--id", str(created["id"]), "--json")
    assert json.loads(capsys.readouterr().out)["verification"] == "passed"
    call_command("backup_list", "--json")
    listed = json.loads(capsys.readouterr().out)
    assert listed["recent"][0]["id"] == created["id"]
    with pytest.raises(CommandError) as error:
        call_command("backup_verify", "--id", "999999")
    assert error.value.returncode == 4  # no such backup: nothing was tried


def test_backup__if_due_honours_the_interval(settings):
    BackupRecordFactory(started_at=timezone.now() - datetime.timedelta(hours=2))
    call_command("backup", "--if-due")
    assert BackupRecord.objects.count() == 1

    BackupRecord.objects.update(started_at=timezone.now() - datetime.timedelta(hours=7))
    call_command("backup", "--if-due")
    assert BackupRecord.objects.count() == 2
    assert BackupRecord.objects.latest().trigger == BackupRecord.Trigger.SCHEDULE


@pytest.mark.database
def test_backup__disabled_is_respected(settings):
    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_enabled=False)
    call_command("backup", "--if-due")
    with pytest.raises(CommandError) as error:
        call_command("backup")
    assert error.value.returncode == 2
    assert BackupRecord.objects.count() == 0


def locked_table():
    """Hold ACCESS EXCLUSIVE on auth_user in another session: a backup started now blocks on it."""
    conn = direct()
    conn.execute("BEGIN")
    conn.execute("LOCK TABLE auth_user IN ACCESS EXCLUSIVE MODE")
    return conn


def wait_for_blocked_backup(timeout=20):
    deadline = time.monotonic() + timeout
    with direct() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the first backup never started waiting")


def test_backup__two_at_once_one_runs_the_other_refuses():
    holder = locked_table()
    results = {}

    def first():
        try:
            results["first"] = backups.take_backup()
        except BaseException as exc:  # noqa: BLE001 - reported below
            results["first"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    wait_for_blocked_backup()
    with pytest.raises(CommandError) as error:
        call_command("backup")
    holder.execute("ROLLBACK")
    holder.close()
    thread.join(timeout=60)

    assert error.value.returncode == 1
    assert "another backup of this database is running" in str(error.value)
    assert isinstance(results["first"], BackupRecord)
    assert results["first"].status == BackupRecord.Status.SUCCEEDED


def test_backup__database_lost_mid_dump_leaves_nothing_as_succeeded(pg_cluster, backup_dir):
    holder = locked_table()
    results = {}

    def run():
        try:
            backups.take_backup()
        except BaseException as exc:  # noqa: BLE001 - asserted below
            results["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    wait_for_blocked_backup()
    time.sleep(1)  # the test cluster runs synchronous_commit=off: let the WAL writer flush the running record
    pg_cluster.stop(mode="immediate")
    thread.join(timeout=60)
    holder.close()
    pg_cluster.start()
    connection.close()
    connection.close_pool()

    assert isinstance(results["error"], BackupError)
    assert not BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED).exists()
    assert not any(p.suffix == ".dump" for p in backup_dir.glob("*")) if backup_dir.exists() else True
    # The next backup, holding the lock, knows the old one is not running: it is marked failed.
    backups.take_backup()
    interrupted = BackupRecord.objects.order_by("started_at").first()
    assert interrupted.status == BackupRecord.Status.FAILED
    assert "interrupted" in interrupted.error


def test_backup__pg_dump_older_than_the_server_is_refused_and_recorded(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "pg_dump"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.22'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(BackupError, match="pg_dump 12 is older than the server"):
        backups.take_backup()
    record = BackupRecord.objects.get()
    assert record.status == BackupRecord.Status.FAILED
    assert "install postgresql-client-15" in record.error


@pytest.mark.database
def test_backup__missing_pg_dump_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackupError, match="pg_dump not found"):
        backups.take_backup()
    assert BackupRecord.objects.get().status == BackupRecord.Status.FAILED


def test_backup__storage_error_fails_the_record_and_leaves_no_file(settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the storage wants a folder")
    settings.STORAGES = {
        **settings.STORAGES,
        "dbbackup": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(blocker / "backups")},
        },
    }
    with pytest.raises(BackupError):
        backups.take_backup()
    record = BackupRecord.objects.get()
    assert record.status == BackupRecord.Status.FAILED
    assert record.error


@pytest.mark.database
def test_prune__keeps_the_newest_verified_and_deletes_the_old(settings, backup_dir):
    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_retention_days=30, backup_keep_verified=2)
    now = timezone.now()
    backup_dir.mkdir(parents=True, exist_ok=True)

    def make(days_old, verification=BackupRecord.Verification.PASSED):
        record = BackupRecordFactory(started_at=now - datetime.timedelta(days=days_old), verification=verification)
        (backup_dir / record.filename).write_bytes(b"x")
        return record

    old_verified = [make(40), make(50), make(60)]
    old_unverified = make(35, BackupRecord.Verification.UNVERIFIED)
    recent = make(1, BackupRecord.Verification.UNVERIFIED)

    planned = backups.prune_backups(dry_run=True)
    assert {r.pk for r in planned} == {old_unverified.pk, old_verified[2].pk}
    assert all((backup_dir / r.filename).exists() for r in planned)

    call_command("backup_prune")
    for record in (old_unverified, old_verified[2]):
        record.refresh_from_db()
        assert record.file_deleted_at is not None
        assert not (backup_dir / record.filename).exists()
    for record in (old_verified[0], old_verified[1], recent):  # newest two verified kept, recent kept
        assert (backup_dir / record.filename).exists()


@pytest.mark.database
def test_backup_health__freshness_and_failed_verification(settings):
    assert backup_findings()[0] == (
        "failure",
        "no successful backup yet while backups are enabled: run manage.py backup",
    )
    record = BackupRecordFactory(started_at=timezone.now() - datetime.timedelta(hours=7))
    assert [level for level, _ in backup_findings()] == ["warning"]
    record.started_at = timezone.now() - datetime.timedelta(hours=13)
    record.save()
    assert [level for level, _ in backup_findings()] == ["failure"]
    record.started_at = timezone.now()
    record.verification = BackupRecord.Verification.FAILED
    record.save()
    assert "failed verification" in backup_findings()[0][1]
    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_enabled=False)
    assert backup_findings() == []


def test_system_grants__a_dump_carrying_them_verifies_and_restores_without_them():
    # What PITR set-up does in the database pgBackRest uses; in the site's own database it reached every dump.
    with direct() as conn:
        conn.execute("DROP ROLE IF EXISTS dbops_grantee")
        conn.execute("CREATE ROLE dbops_grantee")
        conn.execute("GRANT EXECUTE ON FUNCTION pg_catalog.pg_create_restore_point(text) TO dbops_grantee")
    try:
        record = backups.take_backup()
        from dbops.backups import pgtools
        from dbops.backups.logical.verify import open_verified_copy

        dump = open_verified_copy(record)
        env = pgtools.client_env(connection.settings_dict)
        import subprocess

        archive = dump.read()
        listed = subprocess.run(
            ["pg_restore", "--list"], input=archive, capture_output=True, check=True
        ).stdout.decode()
        assert "ACL pg_catalog FUNCTION pg_create_restore_point" in listed  # pg_dump carried it
        with pgtools.restore_list(dump, env=env) as use_list, open(use_list) as restored:
            listing = restored.read()
        assert "pg_catalog" not in listing and "TABLE DATA public auth_user" in listing
        assert backups.verify_backup(record).verification == BackupRecord.Verification.PASSED
    finally:
        with direct() as conn:
            conn.execute("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_create_restore_point(text) FROM dbops_grantee")
            conn.execute("DROP ROLE dbops_grantee")

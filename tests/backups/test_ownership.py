"""Backup files prune may delete are provably this site's; a restored history says how its backups ended."""

from __future__ import annotations

import datetime
import json

import pytest
from django.utils import timezone

from dbops.backups import logical as backups
from dbops.backups.logical.storage import backup_file_name
from dbops.models import BackupRecord

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("backup_dir")]

STARTED = datetime.datetime(2026, 11, 1, 3, 4, 5, tzinfo=datetime.UTC)


def record(status=BackupRecord.Status.FAILED, **fields) -> BackupRecord:
    return BackupRecord.objects.create(
        started_at=fields.pop("started_at", STARTED), database_name="app", status=status, **fields
    )


def write(folder, name: str, content: bytes = b"dump") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    folder.joinpath(name).write_bytes(content)


def test_prune__deletes_a_failed_backups_leftovers_and_keeps_files_no_record_proves_ours(backup_dir):
    failed = record()
    ours = backup_file_name(failed, "dump")
    write(backup_dir, ours)
    write(backup_dir, f"{ours}.metadata", b"{}")
    # Another site sharing the folder: a backup of the same id but its own start; and an id we never had.
    write(backup_dir, f"app-20261101-030406-{failed.pk}.dump")
    write(backup_dir, "shop-20261101-000000-999.dump.age")
    write(backup_dir, "notes.txt")

    preview = backups.prune_orphans(dry_run=True)
    assert preview.ours == [ours, f"{ours}.metadata"]
    assert preview.unproven == [f"app-20261101-030406-{failed.pk}.dump", "shop-20261101-000000-999.dump.age"]
    assert backup_dir.joinpath(ours).exists()

    backups.prune_orphans()
    assert sorted(p.name for p in backup_dir.iterdir()) == sorted(
        [f"app-20261101-030406-{failed.pk}.dump", "shop-20261101-000000-999.dump.age", "notes.txt"]
    )


def test_prune__a_running_backups_file_and_a_held_file_are_not_orphans(backup_dir):
    running = record(BackupRecord.Status.RUNNING)
    held = record(BackupRecord.Status.SUCCEEDED, started_at=STARTED + datetime.timedelta(seconds=1))
    held.filename = backup_file_name(held, "dump")
    held.save()
    write(backup_dir, backup_file_name(running, "dump"))
    write(backup_dir, held.filename)
    orphans = backups.orphan_files()
    assert orphans.ours == [] and orphans.unproven == []


def test_prune__a_file_retention_marked_deleted_but_still_there_is_ours(backup_dir):
    pruned = record(BackupRecord.Status.SUCCEEDED, file_deleted_at=timezone.now())
    pruned.filename = backup_file_name(pruned, "dump.gz")
    pruned.save()
    write(backup_dir, pruned.filename)
    assert backups.orphan_files().ours == [pruned.filename]


def test_restored_history__a_running_record_whose_metadata_is_stored_ended_as_it_says(backup_dir):
    # A dump carries its own record as it was while dumping: running, no file name yet.
    restored = record(BackupRecord.Status.RUNNING)
    name = backup_file_name(restored, "dump.age")
    write(backup_dir, name, b"x" * 10)
    stored_at = STARTED + datetime.timedelta(seconds=42)
    metadata = {
        "started_at": STARTED.isoformat(),
        "stored_at": stored_at.isoformat(),
        "sha256": "ab" * 32,
        "size_bytes": 10,
        "row_counts": {"public.auth_user": 3},
        "server_version": "15.19",
    }
    write(backup_dir, f"{name}.metadata", json.dumps(metadata).encode())
    died = record(BackupRecord.Status.RUNNING, started_at=STARTED + datetime.timedelta(minutes=5))

    backups.reap_interrupted()

    restored.refresh_from_db()
    assert restored.status == BackupRecord.Status.SUCCEEDED
    assert (restored.filename, restored.sha256, restored.size_bytes) == (name, "ab" * 32, 10)
    assert restored.row_counts == {"public.auth_user": 3}
    assert restored.finished_at == stored_at and restored.duration_seconds == 42
    died.refresh_from_db()
    assert died.status == BackupRecord.Status.FAILED and "interrupted" in died.error
    # ...and prune now holds the restored backup's file as its own, not an orphan.
    assert backups.orphan_files().ours == []


def test_restored_history__metadata_of_another_start_does_not_describe_the_record(backup_dir):
    running = record(BackupRecord.Status.RUNNING)
    name = backup_file_name(running, "dump")
    write(backup_dir, name)
    other = {"started_at": (STARTED + datetime.timedelta(hours=1)).isoformat(), "sha256": "cd" * 32}
    write(backup_dir, f"{name}.metadata", json.dumps(other).encode())
    backups.reap_interrupted()
    running.refresh_from_db()
    assert running.status == BackupRecord.Status.FAILED

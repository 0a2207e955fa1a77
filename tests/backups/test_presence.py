"""What is shown about a backup is checked where it is claimed: a file gone from its storage stops counting."""

from __future__ import annotations

import datetime

import pytest
from django.core.files.storage import FileSystemStorage
from django.utils import timezone

from dbops.backups import logical as backups
from dbops.backups.logical import presence
from dbops.backups.logical.storage import backup_file_name
from dbops.health.backups import backup_findings
from dbops.models import BackupRecord

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("backup_dir")]


@pytest.fixture(autouse=True)
def no_presence_cache(monkeypatch):
    monkeypatch.setattr(presence, "PRESENCE_TTL", 0.0)


def verified_backup(backup_dir, hours_ago: float) -> BackupRecord:
    record = BackupRecord.objects.create(
        started_at=timezone.now() - datetime.timedelta(hours=hours_ago),
        database_name="app",
        status=BackupRecord.Status.SUCCEEDED,
        verification=BackupRecord.Verification.PASSED,
        verified_at=timezone.now(),
        size_bytes=4,
        sha256="ab" * 32,
    )
    record.filename = backup_file_name(record, "dump")
    record.save()
    backup_dir.mkdir(parents=True, exist_ok=True)
    (backup_dir / record.filename).write_bytes(b"dump")
    return record


def test_newest_verified__a_file_deleted_outside_dbops_stops_counting_at_once(backup_dir):
    older = verified_backup(backup_dir, hours_ago=3)
    newest = verified_backup(backup_dir, hours_ago=1)
    assert backups.backup_status()["newest_verified"]["local"]["id"] == newest.pk

    (backup_dir / newest.filename).unlink()  # a lifecycle rule, a hand, an attacker

    entry = backups.backup_status()["newest_verified"]["local"]
    assert entry["id"] == older.pk and entry["missing"] == [newest.pk]
    messages = [f.message for f in backup_findings() if f.level == "failure"]
    assert any(f"#{newest.pk}'s file is missing" in message for message in messages), messages


def test_newest_verified__a_storage_that_cannot_answer_is_said_not_vouched_for(backup_dir, monkeypatch):
    newest = verified_backup(backup_dir, hours_ago=1)

    def unreachable(self, name):
        raise OSError("the disk went away")

    monkeypatch.setattr(FileSystemStorage, "exists", unreachable)
    entry = backups.backup_status()["newest_verified"]["local"]
    assert entry["id"] == newest.pk and "the disk went away" in entry["unconfirmed"]
    assert any("cannot confirm the newest verified backup" in f.message for f in backup_findings())

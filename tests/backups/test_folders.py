"""The backup folder is private; the folders above it stay reachable (pgBackRest's OS user reads var/pgbackrest)."""

from __future__ import annotations

import dataclasses
import os
import stat

import pytest
from django.core.files.base import ContentFile

from dbops.backups.logical.storage import backup_storage, local_copy_storage
from dbops.conf.config import BackupS3Config

pytestmark = pytest.mark.pure


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_backup_folder__private_while_the_folder_above_keeps_the_usual_mode(settings, tmp_path, umask_022):
    folder = tmp_path / "var" / "backups"
    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_dir=folder)
    settings.STORAGES = {**settings.STORAGES, "dbbackup": settings.DBOPS.backup_storage()}
    backup_storage().save("app-20261101-000000-1.dump", ContentFile(b"dump"))
    assert mode(folder) == 0o700 and mode(folder / "app-20261101-000000-1.dump") == 0o600
    assert mode(tmp_path / "var") == 0o755  # var/pgbackrest beside it stays reachable for the postgres user


def test_local_copy_folder__private_while_the_folder_above_keeps_the_usual_mode(settings, tmp_path, umask_022):
    folder = tmp_path / "var" / "local-copies"
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS, backup_dir=folder, backup_local_copy_days=2, backup_s3=BackupS3Config(bucket="b")
    )
    local_copy_storage().save("app-20261101-000000-1.dump", ContentFile(b"dump"))
    assert mode(folder) == 0o700 and mode(tmp_path / "var") == 0o755


def test_backup_folder__an_existing_world_writable_folder_is_made_private_again(settings, tmp_path, umask_022, caplog):
    folder = tmp_path / "backups"
    folder.mkdir()
    folder.chmod(0o777)
    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_dir=folder)
    settings.STORAGES = {**settings.STORAGES, "dbbackup": settings.DBOPS.backup_storage()}
    backup_storage()
    assert mode(folder) == 0o700
    assert any(getattr(r, "event", "") == "backup_folder_tightened" for r in caplog.records)

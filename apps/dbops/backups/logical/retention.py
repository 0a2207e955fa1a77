"""Retention: expired backups and local copies, and files no record holds (orphans), with --dry-run."""

from __future__ import annotations

import contextlib
import datetime

from django.utils import timezone

from dbops.backups.logical.locks import reap_interrupted
from dbops.backups.logical.storage import BACKUP_FILE_NAME, backup_storage, delete_files, local_copy_storage
from dbops.conf import get_config
from dbops.models import BackupRecord


def prune_backups(*, dry_run: bool = False, now: datetime.datetime | None = None) -> list[BackupRecord]:
    """Delete backup files older than the retention, always keeping the newest verified successful ones."""
    config = get_config()
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=config.backup_retention_days)
    with_files = BackupRecord.objects.filter(file_deleted_at__isnull=True).exclude(filename="")
    keep = set(
        with_files.filter(status=BackupRecord.Status.SUCCEEDED, verification=BackupRecord.Verification.PASSED)
        .order_by("-started_at")
        .values_list("pk", flat=True)[: config.backup_keep_verified]
    )
    doomed = [r for r in with_files.filter(started_at__lt=cutoff).order_by("started_at") if r.pk not in keep]
    if not dry_run:
        for record in doomed:
            delete_files(record.filename)
            record.file_deleted_at = now
            record.save(update_fields=["file_deleted_at"])
    return doomed


def prune_local_copies(*, dry_run: bool = False, now: datetime.datetime | None = None) -> list[BackupRecord]:
    """Delete local copies older than DATABASE_BACKUP_LOCAL_COPY_DAYS, keeping the newest verified one."""
    local = local_copy_storage()
    if local is None:
        return []
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=get_config().backup_local_copy_days)
    held = BackupRecord.objects.filter(local_copy_deleted_at__isnull=True).exclude(local_copy="")
    newest_verified = (
        held.filter(verification=BackupRecord.Verification.PASSED, local_copy_verified_at__isnull=False)
        .order_by("-started_at")
        .values_list("pk", flat=True)
        .first()
    )
    doomed = [r for r in held.filter(started_at__lt=cutoff).order_by("started_at") if r.pk != newest_verified]
    if not dry_run:
        for record in doomed:
            delete_files(record.local_copy, local)
            record.local_copy_deleted_at = now
            record.save(update_fields=["local_copy_deleted_at"])
    return doomed


def _orphans_in(storage, held_field: str) -> list[str]:
    try:
        _, files = storage.listdir("")
    except (OSError, NotImplementedError):
        return []
    held = set(BackupRecord.objects.exclude(**{held_field: ""}).values_list(held_field, flat=True))
    running = set(BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING).values_list("pk", flat=True))
    orphans = []
    for name in sorted(files):
        dump = name.removesuffix(".metadata")
        match = BACKUP_FILE_NAME.match(dump)
        if match and dump not in held and int(match["id"]) not in running:
            orphans.append(name)
    return orphans


def orphan_files() -> list[str]:
    """Return backup-named files that no record holds: what a backup that died while writing left.

    Files of a backup still running are not orphans; local copies beside a bucket are named "local:<file>".
    """
    orphans = _orphans_in(backup_storage(), "filename")
    local = local_copy_storage()
    if local is not None:
        orphans += [f"local:{name}" for name in _orphans_in(local, "local_copy")]
    return orphans


def prune_orphans(*, dry_run: bool = False) -> list[str]:
    """Delete the files `orphan_files` names (after finishing the records of backups that died); return them."""
    reap_interrupted()
    orphans = orphan_files()
    if not dry_run:
        storage, local = backup_storage(), local_copy_storage()
        for name in orphans:
            where, path = (local, name.removeprefix("local:")) if name.startswith("local:") else (storage, name)
            with contextlib.suppress(FileNotFoundError):
                if where is not None:
                    where.delete(path)
    return orphans

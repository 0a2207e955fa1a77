"""Retention: expired backups and local copies, and files no record holds (orphans), with --dry-run."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime

from django.utils import timezone

from dbops.backups.logical.locks import reap_interrupted
from dbops.backups.logical.storage import (
    BACKUP_FILE_NAME,
    backup_file_names,
    backup_storage,
    delete_files,
    local_copy_storage,
)
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


@dataclasses.dataclass
class Orphans:
    """Backup-named files no record holds: `ours` provably this site's (deleted by prune), `unproven` kept."""

    ours: list[str] = dataclasses.field(default_factory=list)
    unproven: list[str] = dataclasses.field(default_factory=list)


def _orphans_in(storage, held_field: str, deleted_field: str, label: str = "") -> Orphans:
    """Sort the backup-named files of `storage` that no record holds into provably ours and unproven.

    A file is provably ours when its name is exactly the one this site's record of that id gave its backup
    (database, start to the second, id): a failed or killed backup's leftovers. Another site sharing the folder
    or prefix, or a backup whose record a restore took back, has no such record here: its files are kept.
    """
    found = Orphans()
    try:
        _, files = storage.listdir("")
    except (OSError, NotImplementedError):
        return found
    candidates = {}
    for name in sorted(files):
        match = BACKUP_FILE_NAME.match(name.removesuffix(".metadata"))
        if match:
            candidates[name] = int(match["id"])
    records = BackupRecord.objects.in_bulk(set(candidates.values()))
    for name, record_id in candidates.items():
        dump, record = name.removesuffix(".metadata"), records.get(record_id)
        if record is None or dump not in backup_file_names(record):
            found.unproven.append(label + name)
        elif record.status == BackupRecord.Status.RUNNING:
            continue  # still being written
        elif getattr(record, held_field) == dump and getattr(record, deleted_field) is None:
            continue  # held: retention decides
        else:
            found.ours.append(label + name)
    return found


def orphan_files() -> Orphans:
    """Return the backup-named files that no record holds, split into provably ours and unproven.

    Files of a backup still running are neither; local copies beside a bucket are named "local:<file>".
    """
    found = _orphans_in(backup_storage(), "filename", "file_deleted_at")
    local = local_copy_storage()
    if local is not None:
        more = _orphans_in(local, "local_copy", "local_copy_deleted_at", "local:")
        found.ours += more.ours
        found.unproven += more.unproven
    return found


def _ours(name: str, records: dict[int, BackupRecord]) -> bool:
    match = BACKUP_FILE_NAME.match(name.removesuffix(".metadata"))
    record = records.get(int(match["id"])) if match else None
    return (
        record is not None
        and record.status != BackupRecord.Status.RUNNING
        and name.removesuffix(".metadata") in backup_file_names(record)
    )


def unfinished_uploads(storage) -> list[tuple[str, object]]:
    """Return (name, upload) of the bucket's unfinished multipart uploads that a record proves ours.

    A backup killed during its upload leaves one behind: invisible in listings, billed by the store until aborted.
    Only uploads named for one of this site's records whose backup is not running are returned.
    """
    bucket = getattr(storage, "bucket", None)
    if bucket is None:  # not a bucket (a folder has no unfinished uploads)
        return []
    prefix = f"{storage.location}/" if storage.location else ""
    uploads = [(upload.key.removeprefix(prefix), upload) for upload in bucket.multipart_uploads.filter(Prefix=prefix)]
    ids = {int(m["id"]) for name, _ in uploads if (m := BACKUP_FILE_NAME.match(name.removesuffix(".metadata")))}
    records = BackupRecord.objects.in_bulk(ids)
    return [(name, upload) for name, upload in uploads if _ours(name, records)]


def prune_orphans(*, dry_run: bool = False) -> Orphans:
    """Delete the files `orphan_files` proves ours (after finishing the records of backups that died).

    Unfinished multipart uploads of this site's failed or killed backups are aborted too (listed as "upload:").
    """
    reap_interrupted()
    orphans = orphan_files()
    uploads = unfinished_uploads(backup_storage())
    orphans.ours += [f"upload:{name}" for name, _ in uploads]
    if not dry_run:
        for _name, upload in uploads:
            upload.abort()  # type: ignore[attr-defined]
    if not dry_run:
        storage, local = backup_storage(), local_copy_storage()
        for name in orphans.ours:
            if name.startswith("upload:"):
                continue
            where, path = (local, name.removeprefix("local:")) if name.startswith("local:") else (storage, name)
            with contextlib.suppress(FileNotFoundError):
                if where is not None:
                    where.delete(path)
    return orphans

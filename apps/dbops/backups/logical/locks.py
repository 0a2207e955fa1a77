"""Advisory locks that keep two backups (or restores) from overlapping, and the records of runs that were killed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dbops.backups.logical.database import maintenance_connection
from dbops.backups.logical.storage import local_copy_storage, stored_description
from dbops.database.rows import one_row
from dbops.exceptions import (
    BackupInProgress,
)
from dbops.models import BackupRecord, RestoreRecord

# pg_advisory_lock key shared by every dbops backup of a database ("dbops" in ASCII, then 1); restores hold 4.
BACKUP_LOCK_KEY = 0x64626F707301


RESTORE_LOCK_KEY = 0x64626F707304
# Held by every recorded pgBackRest backup or verify: a `running` PITR record whose lock is free has died.
PITR_LOCK_KEY = 0x64626F707305


def mark_interrupted_backups() -> int:
    """End `running` records: called while holding the backup lock, so none of them is running.

    A backup whose metadata is stored beside its dump ended well (a dump restored on a new machine carries its
    own record as it was while dumping): it is recorded as it ended. The others died: failed.
    """
    for record in BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING):
        _record_as_described(record)
    return BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING).update(
        status=BackupRecord.Status.FAILED,
        finished_at=timezone.now(),
        error="interrupted: the backup process died or lost the database before recording its end",
    )


def _record_as_described(record: BackupRecord) -> None:
    described = stored_description(record)
    if described is None:
        return
    name, metadata = described
    local, local_copy = local_copy_storage(), ""
    if local is not None and stored_description(record, local) is not None:
        local_copy = name
    ended = parse_datetime(str(metadata.get("stored_at") or "")) or record.started_at
    BackupRecord.objects.filter(pk=record.pk, status=BackupRecord.Status.RUNNING).update(
        status=BackupRecord.Status.SUCCEEDED,
        finished_at=ended,
        duration_seconds=max(0.0, (ended - record.started_at).total_seconds()),
        filename=name,
        local_copy=local_copy,
        size_bytes=metadata.get("size_bytes") or 0,
        sha256=metadata.get("sha256") or "",
        row_counts=metadata.get("row_counts") or {},
        server_version=metadata.get("server_version") or "",
        signature=metadata.get("signature") or "",
        error="",
    )


def mark_interrupted_restores() -> int:
    """Mark `running` restore records failed: called while holding the restore lock, so none of them is running."""
    return RestoreRecord.objects.filter(status=RestoreRecord.Status.RUNNING).update(
        status=RestoreRecord.Status.FAILED,
        finished_at=timezone.now(),
        error="interrupted: the restore process died or lost the database before recording its end "
        "(its safety backup, if any, is listed in the record)",
    )


@contextlib.contextmanager
def advisory_lock(alias: str, key: int, busy: str) -> Iterator[None]:
    """Hold the session advisory lock `key` on `alias` for the block, or raise BackupInProgress(`busy`)."""
    with maintenance_connection(alias) as conn:
        if not one_row(conn.execute("SELECT pg_try_advisory_lock(%s)", [key]))[0]:
            raise BackupInProgress(busy)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", [key])


def backup_lock(alias: str):
    """Hold the database-wide backup advisory lock, or raise BackupInProgress."""
    return advisory_lock(
        alias,
        BACKUP_LOCK_KEY,
        "another backup of this database is running (PostgreSQL advisory lock held): try again later",
    )


def restore_lock(alias: str):
    """Hold the database-wide restore advisory lock, or raise BackupInProgress."""
    return advisory_lock(alias, RESTORE_LOCK_KEY, "another restore of this database is running: try again later")


def reap_interrupted(alias: str = "default") -> None:
    """Finish the records of backups and restores whose process died (`kill -9`, a lost host).

    A running backup or restore holds its advisory lock for as long as its session lives; a `running` record
    whose lock is free has nobody left to finish it.
    """
    for lock, mark in ((backup_lock, mark_interrupted_backups), (restore_lock, mark_interrupted_restores)):
        with contextlib.suppress(BackupInProgress), lock(alias):
            mark()

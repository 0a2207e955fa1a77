"""Backups through django-dbbackup's PostgreSQL connector (pg_dump --format=custom), made verifiable.

What dbops adds: a `BackupRecord` per run; the sha256 and per-table row counts of the dump, taken in the very
snapshot pg_dump dumps (`pg_export_snapshot` + `pg_dump --snapshot`); verification by restoring into a scratch
database; a restore that verifies first and takes a safety backup before touching live data; age-based
retention that keeps the newest verified backups; a PostgreSQL advisory lock so two backups never overlap.

Modules: `take`, `verify`, `restore`, `retention`, `status`; beneath them `storage`, `database` and `locks`.
"""

from __future__ import annotations

from dbops.backups.logical.database import count_rows, user_tables
from dbops.backups.logical.history import restore_consequences
from dbops.backups.logical.locks import (
    BACKUP_LOCK_KEY,
    RESTORE_LOCK_KEY,
    mark_interrupted_backups,
    mark_interrupted_restores,
    reap_interrupted,
)
from dbops.backups.logical.restore import restore_backup
from dbops.backups.logical.retention import orphan_files, prune_backups, prune_local_copies, prune_orphans
from dbops.backups.logical.status import LOCATION_NAMES, backup_status, backup_summary, newest_verified_by_location
from dbops.backups.logical.storage import BACKUP_FILE_NAME, backup_storage, dump_connector, local_copy_storage
from dbops.backups.logical.take import backup_due, take_backup
from dbops.backups.logical.verify import verify_backup

__all__ = [
    "restore_consequences",
    "BACKUP_FILE_NAME",
    "BACKUP_LOCK_KEY",
    "LOCATION_NAMES",
    "RESTORE_LOCK_KEY",
    "backup_due",
    "backup_status",
    "backup_storage",
    "backup_summary",
    "count_rows",
    "dump_connector",
    "local_copy_storage",
    "mark_interrupted_backups",
    "mark_interrupted_restores",
    "newest_verified_by_location",
    "orphan_files",
    "prune_backups",
    "prune_local_copies",
    "prune_orphans",
    "reap_interrupted",
    "restore_backup",
    "take_backup",
    "user_tables",
    "verify_backup",
]

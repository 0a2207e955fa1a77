"""What backup_list, health and the dashboard show: each backup summarised, the newest verified per location."""

from __future__ import annotations

import datetime

from django.db import connections
from django.utils import timezone

from dbops.backups.logical.locks import reap_interrupted
from dbops.backups.logical.presence import is_present
from dbops.backups.logical.storage import backup_storage, local_copy_storage
from dbops.backups.logical.take import backup_due
from dbops.conf import get_config
from dbops.database.rows import one_row
from dbops.models import BackupRecord


def backup_summary(record: BackupRecord, *, now: datetime.datetime | None = None) -> dict:
    """Describe a backup for reports, commands and the dashboard."""
    now = now or timezone.now()
    return {
        "id": record.pk,
        "started_at": record.started_at.isoformat(),
        "age_hours": round((now - record.started_at).total_seconds() / 3600, 2),
        "status": record.status,
        "trigger": record.trigger,
        "database": record.database_name,
        "file": record.filename or None,
        "file_deleted": record.file_deleted_at is not None,
        "size_bytes": record.size_bytes,
        "sha256": record.sha256 or None,
        "duration_seconds": round(record.duration_seconds, 3) if record.duration_seconds is not None else None,
        "rows": sum(record.row_counts.values()) if record.row_counts else None,
        "verification": record.verification,
        "verified_at": record.verified_at.isoformat() if record.verified_at else None,
        "local_copy": _local_copy_present(record),
        "error": record.error or None,
    }


def _local_copy_present(record: BackupRecord) -> str | None:
    """Return the local copy's name when it is on this machine's disk (a restored history names the old one's)."""
    if not record.local_copy or record.local_copy_deleted_at:
        return None
    local = local_copy_storage()
    if local is None or is_present(local, record.local_copy)[0] is False:
        return None
    return record.local_copy


LOCATION_NAMES = {"remote": "in the bucket", "local": "on local disk"}


# Per kind of copy (the main file, or the local copy kept beside a bucket): when it is there, when it is verified.
_PRESENT = {
    "main": "filename <> '' AND file_deleted_at IS NULL",
    "local copy": "local_copy <> '' AND local_copy_deleted_at IS NULL",
}


_VERIFIED = {
    "main": "verification = 'passed'",
    "local copy": "verification = 'passed' AND local_copy_verified_at IS NOT NULL",
}


def newest_verified_by_location(cursor, *, now: datetime.datetime) -> dict[str, dict]:
    """Return, per location ("remote": the bucket, "local": DATABASE_BACKUP_DIR), its newest verified backup.

    Each entry: id, started_at and age_hours of the newest verified backup whose copy is still there (None for
    all three when there is none), oldest_unverified_hours, the age of the oldest successful backup there when
    none is verified, and missing: the ids of newer verified backups whose file is gone from that location (looked
    up in the storage, briefly cached; an unreachable storage is `unconfirmed`, the claim kept but not vouched for).
    `cursor` is any DB-API cursor (a probe connection's in health, the ORM's elsewhere).
    """
    locations = get_config().backup_locations()
    table = BackupRecord._meta.db_table
    report = {}
    for location in locations:
        copy = "local copy" if location == "local" and "remote" in locations else "main"
        present = f"status = 'succeeded' AND {_PRESENT[copy]}"
        column = "local_copy" if copy == "local copy" else "filename"
        cursor.execute(
            f"SELECT id, started_at, {column} FROM {table} WHERE {present} AND {_VERIFIED[copy]} "  # noqa: S608
            "ORDER BY started_at DESC LIMIT 5"
        )
        entry: dict = {
            "id": None,
            "started_at": None,
            "age_hours": None,
            "oldest_unverified_hours": None,
            "missing": [],
            "unconfirmed": None,
        }
        storage = local_copy_storage() if copy == "local copy" else backup_storage()
        for backup_id, started_at, name in cursor.fetchall():
            there, reason = is_present(storage, name)
            if there is False:
                entry["missing"].append(backup_id)
                continue
            if there is None:  # the storage cannot say: keep the claim, say it is not vouched for
                entry["unconfirmed"] = reason
            entry.update(
                id=backup_id,
                started_at=started_at.isoformat(),
                age_hours=round((now - started_at).total_seconds() / 3600, 2),
            )
            break
        if entry["id"] is None:
            cursor.execute(f"SELECT min(started_at) FROM {table} WHERE {present}")  # noqa: S608
            oldest = one_row(cursor)[0]
            if oldest is not None:
                entry["oldest_unverified_hours"] = round((now - oldest).total_seconds() / 3600, 2)
        report[location] = entry
    return report


def _newest_verified(now: datetime.datetime) -> dict[str, dict]:
    with connections["default"].cursor() as cursor:
        return newest_verified_by_location(cursor, now=now)


def backup_status(*, limit: int = 10) -> dict:
    """Report recent backups and freshness against DATABASE_BACKUP_INTERVAL_HOURS."""
    config = get_config()
    now = timezone.now()
    reap_interrupted()
    recent = list(BackupRecord.objects.order_by("-started_at")[:limit])
    last_success = BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED).order_by("-started_at").first()
    return {
        "enabled": config.backup_enabled,
        "interval_hours": config.backup_interval_hours,
        "retention_days": config.backup_retention_days,
        "due": backup_due(now=now),
        "last_success": backup_summary(last_success, now=now) if last_success else None,
        "newest_verified": _newest_verified(now),
        "recent": [backup_summary(r, now=now) for r in recent],
    }

from __future__ import annotations

import dataclasses
from typing import ClassVar

from django.utils import timezone
from health_check.exceptions import ServiceUnavailable
from psycopg import sql

from dbops.backups.logical import LOCATION_NAMES, newest_verified_by_location
from dbops.conf import get_config
from dbops.database.pool import probe_connection
from dbops.database.rows import one_row
from dbops.database.server import Finding
from dbops.health.base import DbopsCheck
from dbops.models import BackupRecord


def _last_backups(alias: str, timeout: float) -> tuple[BackupRecord | None, BackupRecord | None]:
    """Return the newest successful and the newest finished backup, read through a probe connection.

    A probe connection never queues behind requests for the pool, unlike the ORM's.
    """
    table = sql.Identifier(BackupRecord._meta.db_table)
    with probe_connection(alias, timeout) as conn:
        ids = one_row(
            conn.execute(
                sql.SQL(
                    "SELECT (SELECT id FROM {t} WHERE status = 'succeeded' ORDER BY started_at DESC LIMIT 1),"
                    " (SELECT id FROM {t} WHERE status <> 'running' ORDER BY started_at DESC LIMIT 1)"
                ).format(t=table)
            )
        )
        rows = {}
        for pk in {i for i in ids if i is not None}:
            started_at, status, verification, error = one_row(
                conn.execute(
                    sql.SQL("SELECT started_at, status, verification, error FROM {t} WHERE id = %s").format(t=table),
                    [pk],
                )
            )
            rows[pk] = BackupRecord(pk=pk, started_at=started_at, status=status, verification=verification, error=error)
    return rows.get(ids[0]), rows.get(ids[1])


def backup_findings(*, alias: str = "default", timeout: float = 2.0, now=None) -> list[Finding]:
    """Grade backups; empty when fresh and verified."""
    config = get_config()
    if not config.backup_enabled:
        return []
    now = now or timezone.now()
    interval_hours = config.backup_interval_hours
    success, last = _last_backups(alias, timeout)
    with probe_connection(alias, timeout) as conn:
        locations = newest_verified_by_location(conn.cursor(), now=now)
    findings = _verified_age_findings(locations, config.backup_max_verified_age_hours)
    if success is None:
        findings.append(Finding("failure", "no successful backup yet while backups are enabled: run manage.py backup"))
    else:
        age_hours = (now - success.started_at).total_seconds() / 3600
        if age_hours > 2 * interval_hours:
            findings.append(
                Finding("failure", f"last successful backup is {age_hours:.1f} h old (limit 2 x {interval_hours} h)")
            )
        elif age_hours > interval_hours:
            findings.append(
                Finding("warning", f"last successful backup is {age_hours:.1f} h old (interval {interval_hours} h)")
            )
        if success.verification == BackupRecord.Verification.FAILED:
            findings.append(
                Finding("failure", f"the newest backup #{success.pk} failed verification: it may not restore")
            )
    if last is not None and last.status == BackupRecord.Status.FAILED:
        reason = last.error.strip().splitlines()[-1][:200] if last.error.strip() else "see the backup history"
        findings.append(Finding("warning", f"the last backup #{last.pk} failed: {reason}"))
    return findings


def _verified_age_findings(locations: dict[str, dict], max_age_hours: int) -> list[Finding]:
    """Warn per location when its newest verified backup (proven restorable, still there) is too old or missing."""
    findings = []
    for location, newest in locations.items():
        where = LOCATION_NAMES[location]
        for backup_id in newest.get("missing", []):
            findings.append(
                Finding(
                    "failure",
                    f"verified backup #{backup_id}'s file is missing {where}: deleted outside dbops? It no longer "
                    "counts as a verified backup",
                )
            )
        if newest.get("unconfirmed"):
            findings.append(
                Finding("warning", f"cannot confirm the newest verified backup {where}: {newest['unconfirmed']}")
            )
        if newest["age_hours"] is not None and newest["age_hours"] > max_age_hours:
            findings.append(
                Finding(
                    "warning",
                    f"the newest verified backup {where} (#{newest['id']}) is {newest['age_hours']:.1f} h old "
                    f"(limit {max_age_hours} h): run manage.py backup_verify",
                )
            )
        elif newest["age_hours"] is None and (newest["oldest_unverified_hours"] or 0) > max_age_hours:
            findings.append(
                Finding(
                    "warning",
                    f"no backup {where} has been verified for {newest['oldest_unverified_hours']:.1f} h "
                    f"(limit {max_age_hours} h): run manage.py backup_verify",
                )
            )
    return findings


@dataclasses.dataclass(repr=False)
class BackupFreshness(DbopsCheck):
    """Age of the last successful backup vs DATABASE_BACKUP_INTERVAL_HOURS; failed backups and verifications."""

    title: ClassVar[str] = "Backup freshness"

    def run(self) -> None:
        try:
            findings = backup_findings(alias=self.alias, timeout=self.budget)
        except Exception as exc:
            raise ServiceUnavailable(f"cannot read backup history ({type(exc).__name__})") from exc
        self.raise_findings(findings)

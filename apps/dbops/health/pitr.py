from __future__ import annotations

import dataclasses
import datetime
from typing import ClassVar

from django.utils import timezone
from health_check.exceptions import ServiceUnavailable

from dbops.backups.pitr import PitrTarget, status
from dbops.backups.pitr.window import cached_status
from dbops.conf import get_config
from dbops.database.server import Finding
from dbops.health.base import DbopsCheck


def pitr_findings(
    target: PitrTarget, *, max_age: int, now: datetime.datetime | None = None, fresh: bool = True
) -> list[Finding]:
    """Grade the recoverable window: no backup, archiving failing, or the latest restorable time too old.

    `fresh=False` (the health check) reads the window through the per-process cache.
    """
    now = now or timezone.now()
    report = status(target) if fresh else cached_status(target)
    findings = []
    if not report["backups"]:
        findings.append(Finding("warning", "no pgBackRest backup yet: run manage.py pitr backup"))
    if report["archiver_failing"]:
        findings.append(Finding("warning", f"WAL archiving is failing: {report['archiver_failing']}"))
    latest = report["latest_restorable"]
    if latest is not None and (now - latest).total_seconds() > max_age:
        age = (now - latest).total_seconds() / 60
        findings.append(
            Finding(
                "warning", f"latest restorable time is {age:.0f} min old (limit {max_age // 60} min): check archiving"
            )
        )
    return findings


@dataclasses.dataclass(repr=False)
class PitrWindow(DbopsCheck):
    """The point-in-time recovery window is current (pgBackRest backups exist, WAL keeps arriving)."""

    title: ClassVar[str] = "PITR window"

    def run(self) -> None:
        try:
            findings = pitr_findings(
                PitrTarget.from_settings(self.alias), max_age=get_config().pitr.max_archive_age, fresh=False
            )
        except Exception as exc:
            raise ServiceUnavailable(f"cannot read the pgBackRest repository ({type(exc).__name__})") from exc
        self.raise_findings(findings)

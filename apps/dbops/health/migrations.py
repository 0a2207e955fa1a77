from __future__ import annotations

import dataclasses
from typing import ClassVar

from health_check.exceptions import ServiceUnavailable

from dbops.health.base import DbopsCheck
from dbops.migrations_safety.status import pending_migrations


@dataclasses.dataclass(repr=False)
class PendingMigrations(DbopsCheck):
    """A deploy gate: code whose migrations are not applied is not ready."""

    title: ClassVar[str] = "Pending migrations"

    def run(self) -> None:
        try:
            pending = pending_migrations(self.alias, timeout=self.budget)
        except Exception as exc:
            raise ServiceUnavailable(f"cannot read applied migrations ({type(exc).__name__})") from exc
        if pending:
            names = ", ".join(f"{app}.{name}" for app, name in pending[:5])
            more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
            raise ServiceUnavailable(f"{len(pending)} unapplied migration(s): {names}{more}; run manage.py migrate")

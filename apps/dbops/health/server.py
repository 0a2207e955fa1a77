from __future__ import annotations

import dataclasses

from django.conf import settings
from health_check.exceptions import ServiceUnavailable

from ..server import server_status
from .base import DbopsCheck


@dataclasses.dataclass
class PostgresServer(DbopsCheck):
    """Connections vs max_connections, long and idle transactions, lock waits, replica lag, size."""

    def run(self) -> None:
        try:
            status = server_status(self.alias, thresholds=settings.DBOPS.health, timeout=self.budget)
        except Exception as exc:
            raise ServiceUnavailable(f"server unreachable ({type(exc).__name__})") from exc
        self.raise_findings(status.findings)

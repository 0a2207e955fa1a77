from __future__ import annotations

import dataclasses
from typing import ClassVar

from health_check.exceptions import ServiceUnavailable

from dbops.conf import get_config
from dbops.database.server import server_status
from dbops.health.base import DbopsCheck


@dataclasses.dataclass(repr=False)
class PostgresServer(DbopsCheck):
    """Connections vs max_connections, long and idle transactions, lock waits, replica lag, size."""

    title: ClassVar[str] = "PostgreSQL server"

    def run(self) -> None:
        try:
            status = server_status(self.alias, thresholds=get_config().health, timeout=self.budget)
        except Exception as exc:
            raise ServiceUnavailable(f"server unreachable ({type(exc).__name__})") from exc
        self.raise_findings(status.findings)

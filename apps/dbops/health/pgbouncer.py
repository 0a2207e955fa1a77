from __future__ import annotations

import dataclasses
from typing import ClassVar

from health_check.exceptions import ServiceUnavailable, ServiceWarning

from dbops.health.base import DbopsCheck
from dbops.replication.pgbouncer import pgbouncer_report


@dataclasses.dataclass(repr=False)
class PgBouncerPools(DbopsCheck):
    """PgBouncer answers its admin console and no client waits for a server connection."""

    title: ClassVar[str] = "PgBouncer pools"

    def run(self) -> None:
        try:
            report = pgbouncer_report(timeout=self.budget)
        except Exception as exc:
            raise ServiceUnavailable(f"PgBouncer admin console unreachable ({type(exc).__name__})") from exc
        if report and report["clients_waiting"]:
            raise ServiceWarning(
                f"{report['clients_waiting']} client(s) waiting in PgBouncer (longest {report['max_wait_seconds']} s):"
                " raise default_pool_size or find long transactions"
            )

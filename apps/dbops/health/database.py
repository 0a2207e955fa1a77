from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

from health_check.exceptions import ServiceUnavailable, ServiceWarning

from dbops.conf import get_config
from dbops.database.pool import probe_connection
from dbops.health.base import DbopsCheck


def select_one_latency_ms(alias: str, timeout: float) -> float:
    """Run `SELECT 1` through the pool within `timeout`; return the query's round trip in ms.

    Only the query: a cold process' first checkout opens the connection (TLS, authentication), which is no
    measure of the database's latency and failed the budget on every cold run.
    """
    with probe_connection(alias, timeout) as conn:
        started = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        return (time.perf_counter() - started) * 1000


@dataclasses.dataclass(repr=False)
class DatabaseLatency(DbopsCheck):
    """`SELECT 1` through the pool: failure when unreachable, warning above the latency budget."""

    title: ClassVar[str] = "Database latency"

    def run(self) -> None:
        try:
            latency = select_one_latency_ms(self.alias, self.budget)
        except Exception as exc:
            # psycopg messages can name host and port: report the kind of failure only.
            raise ServiceUnavailable(f"database unreachable ({type(exc).__name__})") from exc
        threshold = get_config().performance_threshold_ms
        if latency > threshold:
            raise ServiceWarning(f"SELECT 1 took {latency:.0f} ms, above the {threshold} ms budget")

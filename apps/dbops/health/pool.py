from __future__ import annotations

import dataclasses
import threading
from typing import ClassVar

from dbops.conf import get_config
from dbops.database.pool import pool_stats
from dbops.database.server import Finding
from dbops.health.base import DbopsCheck

_last_seen: dict[str, dict[str, int]] = {}
_last_seen_lock = threading.Lock()


def pool_findings(alias: str, stats: dict[str, int], previous: dict[str, int] | None) -> list[Finding]:
    """Grade pool statistics; counters are compared with the previous evaluation in this process."""
    findings = []
    previous = previous or {}
    timeouts = stats.get("requests_errors", 0) - previous.get("requests_errors", 0)
    if timeouts > 0:
        findings.append(
            Finding(
                "failure",
                f"{timeouts} checkout(s) waited longer than the pool timeout "
                f"({get_config().database.pool.timeout} s) and failed: the pool is exhausted or the server is down",
            )
        )
    errors = stats.get("connections_errors", 0) - previous.get("connections_errors", 0)
    if errors > 0 and stats.get("pool_size", 0) == 0:
        findings.append(Finding("failure", f"the pool cannot open connections ({errors} attempt(s) failed)"))
    maximum = stats.get("pool_max") or 1
    utilization = 100 * stats.get("in_use", 0) / maximum
    if utilization >= 80:
        waiting = stats.get("requests_waiting", 0)
        findings.append(
            Finding(
                "warning",
                f"pool {utilization:.0f} % in use ({stats.get('in_use', 0)}/{maximum}), {waiting} request(s) waiting: "
                "raise DATABASE_POOL_MAX_OVERFLOW or look for slow queries",
            )
        )
    return findings


@dataclasses.dataclass(repr=False)
class PoolUsage(DbopsCheck):
    """The pool's utilization, waiting requests and checkout failures since the last check."""

    title: ClassVar[str] = "Connection pool"

    def run(self) -> None:
        stats = pool_stats(self.alias)
        if stats is None:
            return
        with _last_seen_lock:
            previous = _last_seen.get(self.alias)
            _last_seen[self.alias] = stats
        self.raise_findings(pool_findings(self.alias, stats, previous))

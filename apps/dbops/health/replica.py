from __future__ import annotations

import dataclasses
from typing import ClassVar

from health_check.exceptions import ServiceWarning

from dbops.conf import get_config
from dbops.health.base import DbopsCheck
from dbops.replication.router import replica_lag_ms


@dataclasses.dataclass(repr=False)
class ReplicaLag(DbopsCheck):
    """The read replica is reachable and within DATABASE_REPLICA_MAX_LAG_MS (reads fall back to the primary)."""

    title: ClassVar[str] = "Replica lag"

    alias: str = "replica"

    def run(self) -> None:
        lag = replica_lag_ms(force=True)
        limit = get_config().replica_max_lag_ms
        if lag is None:
            raise ServiceWarning("replica unreachable (or not a standby): reads go to the primary")
        if lag > limit:
            raise ServiceWarning(f"replica lag {lag:.0f} ms over {limit} ms: reads go to the primary")

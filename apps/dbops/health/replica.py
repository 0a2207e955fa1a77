from __future__ import annotations

import dataclasses

from django.conf import settings
from health_check.exceptions import ServiceWarning

from ..replicas import replica_lag_ms
from .base import DbopsCheck


@dataclasses.dataclass
class ReplicaLag(DbopsCheck):
    """The read replica is reachable and within DATABASE_REPLICA_MAX_LAG_MS (reads fall back to the primary)."""

    alias: str = "replica"

    def run(self) -> None:
        lag = replica_lag_ms(force=True)
        limit = settings.DBOPS.replica_max_lag_ms
        if lag is None:
            raise ServiceWarning("replica unreachable (or not a standby): reads go to the primary")
        if lag > limit:
            raise ServiceWarning(f"replica lag {lag:.0f} ms over {limit} ms: reads go to the primary")

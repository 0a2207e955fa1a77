"""django-health-check 4.x checks for dbops, one module per family, and the check lists of each URL tier."""

from __future__ import annotations

from django.conf import settings

from .backups import BackupFreshness
from .breaker import BreakerClosed
from .database import DatabaseLatency
from .migrations import PendingMigrations
from .pgbouncer import PgBouncerPools
from .pitr import PitrWindow
from .pool import PoolUsage
from .replica import ReplicaLag
from .server import PostgresServer


def readiness_checks() -> list:
    """Return what a load balancer needs: every alias answers, pools serve, no migration pending, breaker closed."""
    # A replica is never a readiness condition: reads fall back to the primary (ReplicaLag reports it).
    aliases = [alias for alias in settings.DATABASES if alias != "replica"]
    return [
        *[(DatabaseLatency, {"alias": alias}) for alias in aliases],
        *[(PoolUsage, {"alias": alias}) for alias in aliases],
        (PendingMigrations, {"alias": "default"}),
        *([(BreakerClosed, {"alias": settings.DBOPS.breaker.alias})] if settings.DBOPS.breaker.enabled else []),
    ]


def all_checks() -> list:
    """Return every check: readiness plus the server's own state and the backups."""
    return [
        *readiness_checks(),
        *[(PostgresServer, {"alias": alias}) for alias in settings.DATABASES if alias != "replica"],
        (BackupFreshness, {"alias": "default"}),
        *([(PitrWindow, {"alias": "default"})] if settings.DBOPS.pitr.enabled else []),
        *([(ReplicaLag, {"alias": "replica"})] if settings.DBOPS.replica is not None else []),
        *([(PgBouncerPools, {"alias": "default"})] if settings.DBOPS.pgbouncer_admin_url else []),
    ]

"""Health: django-health-check 4.x checks (one module per family), the URL tiers, and the detail status reports."""

from __future__ import annotations

from django.conf import settings

from dbops.conf import get_config
from dbops.health.backups import BackupFreshness
from dbops.health.breaker import BreakerClosed
from dbops.health.database import DatabaseLatency
from dbops.health.insights import DatabaseInsights
from dbops.health.migrations import PendingMigrations
from dbops.health.patroni import PatroniCluster
from dbops.health.pgbouncer import PgBouncerPools
from dbops.health.pitr import PitrWindow
from dbops.health.pool import PoolUsage
from dbops.health.replica import ReplicaLag
from dbops.health.server import PostgresServer


def readiness_checks() -> list:
    """Return what a load balancer needs: every alias answers, pools serve, no migration pending, breaker closed."""
    # A replica is never a readiness condition: reads fall back to the primary (ReplicaLag reports it).
    aliases = [alias for alias in settings.DATABASES if alias != "replica"]
    return [
        *[(DatabaseLatency, {"alias": alias}) for alias in aliases],
        *[(PoolUsage, {"alias": alias}) for alias in aliases],
        (PendingMigrations, {"alias": "default"}),
        *([(BreakerClosed, {"alias": get_config().breaker.alias})] if get_config().breaker.enabled else []),
    ]


def all_checks() -> list:
    """Return every check: readiness plus the server's own state and the backups."""
    return [
        *readiness_checks(),
        *[(PostgresServer, {"alias": alias}) for alias in settings.DATABASES if alias != "replica"],
        (BackupFreshness, {"alias": "default"}),
        *[(DatabaseInsights, {"alias": alias}) for alias in settings.DATABASES if alias != "replica"],
        *([(PitrWindow, {"alias": "default"})] if get_config().pitr.enabled else []),
        *([(ReplicaLag, {"alias": "replica"})] if get_config().replica is not None else []),
        *([(PgBouncerPools, {"alias": "default"})] if get_config().pgbouncer_admin_url else []),
        *([(PatroniCluster, {"alias": "default"})] if get_config().patroni_urls else []),
    ]

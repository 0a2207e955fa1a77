"""Services that assemble the JSON status reports of the detail endpoints (and their commands)."""

from __future__ import annotations

from django.db import connections

from dbops.conf import get_config
from dbops.database.pool import pool_stats
from dbops.database.server import server_status
from dbops.health.database import select_one_latency_ms
from dbops.health.schema import schema_report
from dbops.insights.shared import latest_report
from dbops.migrations_safety.runner import last_run
from dbops.migrations_safety.status import applied_migrations, pending_migrations


def database_health(aliases: list[str] | None = None) -> dict:
    """Report connectivity, latency, server state and pool statistics of each alias."""
    config = get_config()
    budget = float(config.health.probe_timeout)
    report = {}
    for alias in aliases or list(connections):
        entry: dict = {"pool": pool_stats(alias)}
        try:
            entry["latency_ms"] = round(select_one_latency_ms(alias, budget), 2)
            entry["server"] = server_status(alias, thresholds=config.health, timeout=budget).as_dict()
            entry["reachable"] = True
        except Exception as exc:
            entry["reachable"] = False
            entry["error"] = type(exc).__name__
        report[alias] = entry
    return {
        "healthy": all(e["reachable"] and not e["server"]["findings"] for e in report.values()),
        "databases": report,
    }


def database_schema(alias: str = "default") -> dict:
    """Report the schema problems of `alias`."""
    return schema_report(alias, timeout=float(get_config().health.probe_timeout))


def migrations_status(alias: str = "default") -> dict:
    """Report applied and pending migrations per app."""
    budget = float(get_config().health.probe_timeout)
    pending = pending_migrations(alias, timeout=budget)
    applied = applied_migrations(alias, timeout=budget)
    apps: dict[str, dict[str, list[str]]] = {}
    for app, name in sorted(applied):
        apps.setdefault(app, {"applied": [], "pending": []})["applied"].append(name)
    for app, name in pending:
        apps.setdefault(app, {"applied": [], "pending": []})["pending"].append(name)
    return {"pending_count": len(pending), "apps": apps, "last_run": last_run()}


def database_insights(alias: str = "default") -> dict:
    """Report the latest database insights of `alias` (at most DBOPS_INSIGHTS_REFRESH_SECONDS old); 503 on critical."""
    report = latest_report(alias)
    return {**report, "healthy": report["worst"] != "critical"}

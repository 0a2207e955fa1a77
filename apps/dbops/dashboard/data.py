"""The operator dashboard's data, from the same services the health endpoints and alerts use.

Pool, breaker, latency (now and over the last hour), slow queries, database insights, backups, migrations and
open alerts.
"""

from __future__ import annotations

import datetime

from django.db import DatabaseError, connections
from django.utils import timezone

from dbops.backups.logical import LOCATION_NAMES, backup_summary, newest_verified_by_location
from dbops.backups.pitr import window_summary
from dbops.breaker.state import get_breaker
from dbops.conf import cache_is_shared, get_config
from dbops.dashboard.charts import line_chart
from dbops.insights.shared import latest_report
from dbops.migrations_safety.runner import last_run
from dbops.migrations_safety.status import pending_migrations
from dbops.models import Alert, BackupRecord, OperationsSample
from dbops.monitoring.snapshots import fleet_snapshots, merged_slow_queries
from dbops.replication.patroni import cluster_view

CHART_WINDOW = datetime.timedelta(hours=1)
MIN_CHART_SPAN = datetime.timedelta(minutes=5)


def _database(alias: str, snapshots: list[dict], now: datetime.datetime) -> dict:
    entries = [s["databases"][alias] for s in snapshots if alias in s.get("databases", {})]
    judged = [e["queries"] for e in entries if e["queries"]["count"]]
    pools = [e["pool"] for e in entries if e.get("pool")]
    in_use, pool_max = sum(p.get("in_use", 0) for p in pools), sum(p.get("pool_max", 0) for p in pools)
    samples = list(OperationsSample.objects.filter(alias=alias, at__gte=now - CHART_WINDOW).order_by("at"))
    series = {
        name: [(s.at, getattr(s, field)) for s in samples if getattr(s, field) is not None]
        for name, field in (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))
    }
    # The axis starts at the first sample (at most an hour ago, at least 5 minutes): early minutes are not a sliver.
    start = min(samples[0].at if samples else now, now - MIN_CHART_SPAN)
    return {
        "alias": alias,
        "processes": len(entries),
        "queries": sum(q["count"] for q in judged),
        "p50_ms": max((q["p50_ms"] for q in judged), default=None),
        "p95_ms": max((q["p95_ms"] for q in judged), default=None),
        "p99_ms": max((q["p99_ms"] for q in judged), default=None),
        "pool_in_use": in_use,
        "pool_max": pool_max,
        "pool_waiting": sum(p.get("requests_waiting", 0) for p in pools),
        "pool_percent": round(100 * in_use / pool_max, 1) if pool_max else None,
        "chart": line_chart(
            series,
            start=start,
            end=now,
            budget=get_config().performance_threshold_ms,
            empty_text=f"{len(samples)} sample(s), none with queries: the evaluator saw no web process's queries"
            if samples
            else "no samples yet: run manage.py alerts evaluate",
        ),
        "samples": len(samples),
        "samples_with_queries": len(series["p95"]),
    }


def _processes(snapshots: list[dict], now: float) -> list[dict]:
    """List the web processes whose snapshots the figures combine, newest first."""
    rows = [{"process": s["process"], "seconds_ago": round(max(0.0, now - s["at"]), 1)} for s in snapshots]
    return sorted(rows, key=lambda row: row["seconds_ago"])


def _evaluator(now: datetime.datetime) -> dict:
    """When `alerts evaluate` last recorded a sample, and whether that is later than its interval allows."""
    interval = get_config().alerts.evaluate_interval
    last = OperationsSample.objects.order_by("-at").values_list("at", flat=True).first()
    return {
        "last_ran": last,
        "interval_seconds": interval,
        "late": last is None or (now - last).total_seconds() > 3 * interval,
    }


def _patroni() -> dict | None:
    """Patroni's view of the cluster (None when DBOPS_PATRONI_URLS is unset)."""
    try:
        return cluster_view(timeout=2.0)
    except OSError as exc:
        return {"error": str(exc)}


def _insights() -> list[dict]:
    """Return the shared insight report of each primary alias, findings above info only (the admin page: all)."""
    found: list[dict] = []
    for alias in connections:
        if alias == "replica":
            continue
        try:
            report = latest_report(alias)
        except Exception as exc:
            found.append({"alias": alias, "error": f"cannot run ({type(exc).__name__})"})
            continue
        shown = [i for i in report["insights"] if i["level"] != "info"]
        age = max(0.0, timezone.now().timestamp() - report["at"])
        found.append({"alias": alias, "worst": report["worst"], "insights": shown, "minutes_ago": round(age / 60)})
    return found


def dashboard_data() -> dict:
    """Everything the dashboard shows; each part that cannot be read says so instead of failing the page."""
    now = timezone.now()
    snapshots = fleet_snapshots()
    breaker = get_breaker().current(force=True)
    try:
        pending = [f"{app}.{name}" for app, name in pending_migrations("default", timeout=2.0)]
    except Exception as exc:
        pending = [f"cannot read ({type(exc).__name__})"]
    backups = [backup_summary(record, now=now) for record in BackupRecord.objects.order_by("-started_at")[:5]]
    try:
        with connections["default"].cursor() as cursor:
            verified = [
                {"location": LOCATION_NAMES[location], **entry}
                for location, entry in newest_verified_by_location(cursor, now=now).items()
            ]
    except DatabaseError as exc:
        verified = [{"location": "any", "error": f"cannot read ({type(exc).__name__})"}]
    return {
        "now": now,
        "budget_ms": get_config().performance_threshold_ms,
        "cache_shared": cache_is_shared(get_config().breaker.cache_alias),
        "processes": _processes(snapshots, now.timestamp()),
        "evaluator": _evaluator(now),
        "breaker": {"state": str(breaker.state), "enabled": get_config().breaker.enabled},
        "databases": [_database(alias, snapshots, now) for alias in connections],
        "slow_queries": merged_slow_queries(snapshots),
        "insights": _insights(),
        "backups": backups,
        "newest_verified": verified,
        "pending_migrations": pending,
        "last_migration_run": last_run(),
        "pitr": window_summary(),
        "patroni": _patroni(),
        "alerts": list(Alert.objects.filter(state=Alert.State.FIRING).order_by("-severity", "-fired_at")[:20]),
    }

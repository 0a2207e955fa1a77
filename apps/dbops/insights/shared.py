"""The latest insight report of each database, shared through Django's cache for every reader but the command.

The health check, `/metrics`, the alert rule and the dashboard all want the findings, and a run on a large
catalog takes most of a second: they read the report the cache holds and run the checks again only when it is
older than `DBOPS_INSIGHTS_REFRESH_SECONDS`, one process at a time (a cache `add` is the lock; the others keep
reading the older report meanwhile). `manage.py db_insights` always runs them and shares what it found. A
reader's run waits no longer than a health probe (`DBOPS_HEALTH_PROBE_TIMEOUT` per statement); a check that takes
longer is named in the report's `failed`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

from django.core.cache import caches

from dbops.conf import get_config
from dbops.insights.service import InsightsReport, run_insights

REPORT_KEY = "dbops:insights:{alias}"
LOCK_KEY = "dbops:insights:{alias}:running"


def _cache():
    return caches[get_config().breaker.cache_alias]


def share(report: InsightsReport) -> dict:
    """Store `report` as the latest of its database; return the stored form (the JSON report and when)."""
    stored = {**report.as_dict(), "at": time.time()}
    with contextlib.suppress(Exception):  # a cache outage costs a rerun, never a failure
        _cache().set(REPORT_KEY.format(alias=report.database), stored, timeout=None)
    return stored


def latest_report(alias: str = "default") -> dict:
    """Return the latest report of `alias` (the JSON form plus `at`, its epoch time), running it when stale.

    Raises what `run_insights` raises (psycopg.OperationalError: the database is unreachable) only when there is
    no report at all to fall back on.
    """
    refresh = get_config().insights.refresh_seconds
    cache = _cache()
    stored = None
    with contextlib.suppress(Exception):
        stored = cache.get(REPORT_KEY.format(alias=alias))
    if stored is not None and time.time() - stored["at"] < refresh:
        return stored
    lock = LOCK_KEY.format(alias=alias)
    locked = True
    with contextlib.suppress(Exception):
        locked = cache.add(lock, 1, timeout=max(60, int(get_config().insights.statement_timeout * 12)))
    if not locked and stored is not None:
        return stored  # another process is running them: the older report until it is done
    # A reader is a probe, /metrics, an alert evaluation or a page: it waits no longer than a health probe would (a
    # frozen server costs it DBOPS_HEALTH_PROBE_TIMEOUT, not the command's statement timeout).
    limits = get_config().insights
    limits = dataclasses.replace(
        limits, statement_timeout=min(limits.statement_timeout, float(get_config().health.probe_timeout))
    )
    try:
        return share(run_insights(alias, limits=limits))
    except Exception:
        if stored is not None:
            return stored
        raise
    finally:
        if locked:
            with contextlib.suppress(Exception):
                cache.delete(lock)

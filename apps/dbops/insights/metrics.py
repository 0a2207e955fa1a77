"""The insight findings as Prometheus gauges, from the shared report (`shared.latest_report`) at scrape time."""

from __future__ import annotations

from django.conf import settings
from prometheus_client import Gauge

from dbops.insights.checks import CHECKS
from dbops.insights.service import LEVELS
from dbops.insights.shared import latest_report

FINDINGS = Gauge(
    "dbops_insight_findings",
    "Findings of the newest database insight run, by code and level (manage.py db_insights explains each).",
    ["alias", "code", "level"],
    multiprocess_mode="mostrecent",
)
REPORT_TIME = Gauge(
    "dbops_insights_report_timestamp_seconds",
    "When the insight report the findings come from was made.",
    ["alias"],
    multiprocess_mode="mostrecent",
)


def refresh_insight_metrics() -> None:
    """Set every code and level of each primary alias (0 when absent, so a cleared finding reads 0)."""
    for alias in settings.DATABASES:
        if alias == "replica":
            continue
        try:
            report = latest_report(alias)
        except Exception:  # noqa: S112 - unreachable: dbops_database_up says so; the gauges keep their values
            continue
        counts = {(code, level): 0 for code in CHECKS for level in LEVELS}
        for insight in report["insights"]:
            counts[insight["code"], insight["level"]] += 1
        for (code, level), count in counts.items():
            FINDINGS.labels(alias, code, level).set(count)
        REPORT_TIME.labels(alias).set(report["at"])

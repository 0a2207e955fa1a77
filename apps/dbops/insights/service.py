"""Run the insight checks through a probe connection and tie each finding to its Django model and field."""

from __future__ import annotations

import dataclasses
import time

import psycopg
import psycopg.sql

from dbops.conf import get_config
from dbops.conf.config import InsightsConfig
from dbops.database.pool import probe_connection
from dbops.insights.checks import CHECKS, CRITICAL, INFO, WARN, Raw
from dbops.insights.models import model_of
from dbops.insights.statements import MARK
from dbops.monitoring.queries import normalize_sql
from dbops.monitoring.snapshots import fleet_snapshots, merged_slow_queries

LEVELS = {INFO: 1, WARN: 2, CRITICAL: 3}


@dataclasses.dataclass(frozen=True)
class Insight:
    code: str
    level: str
    object: str
    model: str | None
    message: str
    fix: str
    detail: dict

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class InsightsReport:
    database: str
    insights: list[Insight]
    seconds: float
    failed: dict[str, str]  # code -> why its check could not run (a timeout, a permission)

    @property
    def worst(self) -> str | None:
        return max((i.level for i in self.insights), key=LEVELS.__getitem__, default=None)

    def as_dict(self) -> dict:
        return {
            "database": self.database,
            "seconds": round(self.seconds, 3),
            "worst": self.worst or "ok",
            "summary": {level: sum(1 for i in self.insights if i.level == level) for level in LEVELS},
            "insights": [i.as_dict() for i in self.insights],
            "failed": self.failed,
        }


def _insight(raw: Raw) -> Insight:
    ref = model_of(raw.table, raw.column) if raw.table else None
    return Insight(raw.code, raw.level, raw.object, str(ref) if ref else None, raw.message, raw.fix, raw.detail)


class MarkedConnection:
    """The probe connection, each statement marked as dbops' own so I009 leaves it out of the top statements.

    On a quiet database the insight queries (a third of a second each at 5,000 tables, every refresh) would
    otherwise list themselves as the costliest statements. pg_stat_statements keeps the text's comment.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, query, params=None):
        marked = MARK + query if isinstance(query, str) else psycopg.sql.SQL(MARK) + query
        return self._conn.execute(marked, params)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


def _with_origins(insight: Insight, seen: dict[str, dict]) -> Insight:
    """Name the views and commands dbops' query monitoring saw running an I009 statement (same normalized SQL)."""
    entry = seen.get(normalize_sql(insight.detail.get("query", "")))
    if entry is None or not entry["origins"]:
        return insight
    origins = sorted(entry["origins"], key=entry["origins"].__getitem__, reverse=True)
    return dataclasses.replace(
        insight,
        message=f"{insight.message} (ran by {', '.join(origins)})",
        detail={**insight.detail, "origins": origins},
    )


def run_insights(
    alias: str = "default", *, limits: InsightsConfig | None = None, codes: set[str] | None = None
) -> InsightsReport:
    """Run every check (or `codes`) on `alias`; a check that fails is reported in `failed`, the others still run.

    Raises psycopg.OperationalError when the database cannot be reached at all.
    """
    limits = limits or get_config().insights
    started = time.perf_counter()
    found: list[Insight] = []
    failed: dict[str, str] = {}
    with probe_connection(alias, limits.statement_timeout) as probe:
        conn = MarkedConnection(probe)
        for code, check in CHECKS.items():
            if codes is not None and code not in codes:
                continue
            try:
                with conn.transaction():  # a savepoint: one failed check leaves the others their transaction
                    found += [_insight(raw) for raw in check(conn, limits)]
            except psycopg.errors.QueryCanceled:
                failed[code] = f"took longer than the {limits.statement_timeout:g} s statement timeout"
            except psycopg.errors.InsufficientPrivilege as exc:
                failed[code] = f"not permitted: {str(exc).splitlines()[0]}"
    if any(i.code == "I009" and "query" in i.detail for i in found):
        # pg_stat_statements' $1 and Django's %s both normalize to "?": the same statement, seen from both sides.
        seen = {row["sql"]: row for row in merged_slow_queries(fleet_snapshots(), limit=1000) if row["alias"] == alias}
        found = [_with_origins(i, seen) if i.code == "I009" else i for i in found]
    found.sort(key=lambda i: (-LEVELS[i.level], i.code, i.object))
    return InsightsReport(alias, found, time.perf_counter() - started, failed)

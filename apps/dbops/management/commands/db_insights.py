from pathlib import Path

from django.core.management.base import CommandError

from dbops.insights.checks import CHECKS
from dbops.insights.fixes import write_fix_migrations
from dbops.insights.service import LEVELS, run_insights
from dbops.insights.shared import share
from dbops.management.commands._database import DatabaseCommand
from dbops.management.commands._migration_output import write_json


class Command(DatabaseCommand):
    help = (
        "Database insights: transaction ID wraparound, sequences near their maximum, invalid, duplicate and unused "
        "indexes, foreign keys without an index, autovacuum behind, replication slots holding WAL, the costliest "
        "statements, the cache hit ratio and the indexes hypopg shows they need; each finding with its Django model "
        "and the fix. Read-only. "
        "Exit 0 nothing at or above --fail-on, 1 findings, 2 error, 3 database unreachable."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default", help="Database alias to inspect.")
        parser.add_argument(
            "--code", action="append", choices=sorted(CHECKS), help="Only this check (repeatable): I001 ... I011."
        )
        parser.add_argument(
            "--fail-on",
            choices=list(LEVELS),
            default="warn",
            help="Exit 1 when a finding is at least this level (default: warn).",
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument(
            "--write-migrations",
            metavar="DIR",
            help="Write the fix of each finding on a Django model as migrations under DIR/<app_label>/ for review: "
            "I002 the key widened to bigint (one step, or add/backfill/swap on a big table), I003-I006 and I011 "
            "indexes CONCURRENTLY; nothing is applied.",
        )

    def handle(self, *args, **options):
        codes = set(options["code"]) if options["code"] else None
        report = run_insights(options["database"], codes=codes)
        if codes is None:
            share(report)  # the health check, /metrics, alerts and the dashboard read the newest full run
        if options["json"]:
            write_json(self, report.as_dict())
        else:
            self._write(report)
        if options["write_migrations"]:
            written = write_fix_migrations(report.insights, Path(options["write_migrations"]), options["database"])
            for fix in written:
                done = f"wrote {fix.path}" if fix.path else "nothing written"
                self.stderr.write(f"{done} ({fix.code} {fix.object}): {fix.note}")
            if not written:
                self.stderr.write("no fixable finding on a Django model's table: no migration written")
        threshold = LEVELS[options["fail_on"]]
        if any(LEVELS[i.level] >= threshold for i in report.insights):
            raise CommandError(f"insights at or above {options['fail_on']}", returncode=1)

    def _write(self, report) -> None:
        if not report.insights:
            self.stdout.write(f"{report.database}: nothing found ({report.seconds:.2f} s)")
        for insight in report.insights:
            style = (
                self.style.ERROR
                if insight.level == "critical"
                else (self.style.WARNING if insight.level == "warn" else str)
            )
            model = f" [{insight.model}]" if insight.model else ""
            self.stdout.write(style(f"{insight.code} {insight.level:<8} {insight.object}{model}: {insight.message}"))
            self.stdout.write(f"    fix: {insight.fix}")
        for code, why in report.failed.items():
            self.stdout.write(self.style.WARNING(f"{code} not checked: {why}"))

import json

from django.core.management.base import BaseCommand, CommandError

from dbops.selftest import CONNECTION_BUDGET_MS, FAIL, PASS, SelftestOptions, run_selftest


class Command(BaseCommand):
    help = (
        "Production readiness of the configured database: enforcement, connectivity, connection establishment "
        "(budget 50 ms), query p95 (DATABASE_PERFORMANCE_THRESHOLD_MS), pool sizing vs max_connections, a short "
        "load run, backup freshness, applied migrations, breaker. Exit 0 when nothing fails, 1 otherwise."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default", help="Database alias to test.")
        parser.add_argument("--connect-samples", type=int, default=10, help="New connections to time.")
        parser.add_argument("--query-samples", type=int, default=200, help="SELECT 1 round trips to time.")
        parser.add_argument("--load-users", type=int, default=50, help="Users in the short load run (0: skip).")
        parser.add_argument("--load-seconds", type=float, default=3.0, help="Length of the short load run.")
        parser.add_argument(
            "--connect-budget-ms",
            type=float,
            default=CONNECTION_BUDGET_MS,
            help=f"Budget for a new connection's p95 (default {CONNECTION_BUDGET_MS} ms, the seed's).",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        selftest_options = SelftestOptions(
            alias=options["database"],
            connect_samples=options["connect_samples"],
            query_samples=options["query_samples"],
            load_users=options["load_users"],
            load_seconds=options["load_seconds"],
            connect_budget_ms=options["connect_budget_ms"],
        )
        result = run_selftest(selftest_options, progress=None if options["json"] else self._line)
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, sort_keys=True))
        failed = [line["name"] for line in result["lines"] if line["status"] == FAIL]
        if failed:
            raise CommandError(f"self-test failed: {', '.join(failed)}", returncode=1)
        if not options["json"]:
            self.stdout.write(self.style.SUCCESS("self-test passed"))

    def _line(self, line):
        style = {PASS: self.style.SUCCESS, FAIL: self.style.ERROR}.get(line.status, self.style.WARNING)
        self.stdout.write(f"{style(line.status.upper()):<5} {line.name:<25} {line.detail}")

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from dbops.loadtest import WORKLOADS, LoadPlan, LoadTestError, run_load


class Command(BaseCommand):
    help = (
        "Simulate N users (default 1000) with think time through the real connection pool (a mixed read/write "
        "workload on a scratch schema it creates and drops), or over HTTP against a running server. Reports "
        "throughput, p50/p95/p99 of checkout wait and query time, errors by kind, pool and server connections. "
        "Exit 0 within budget, 1 when p95 exceeds DATABASE_PERFORMANCE_THRESHOLD_MS or any request failed, 2 error."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=1000, help="Simulated users (threads); default 1000.")
        parser.add_argument("--duration", type=float, default=30.0, help="Seconds of load; default 30.")
        parser.add_argument(
            "--think-ms", type=int, default=2000, help="Mean think time between a user's requests (exponential)."
        )
        parser.add_argument("--ramp-up", type=float, default=5.0, help="Seconds over which users start.")
        parser.add_argument("--workload", choices=WORKLOADS, default="mixed", help="mixed (default), read or sleep.")
        parser.add_argument("--write-percent", type=int, default=20, help="Share of writes in the mixed workload.")
        parser.add_argument("--sleep-ms", type=int, default=150, help="pg_sleep per request with --workload sleep.")
        parser.add_argument("--rows", type=int, default=10_000, help="Accounts in the scratch schema.")
        parser.add_argument("--max-requests", type=int, default=None, help="Stop after this many requests.")
        parser.add_argument("--url", default=None, help="HTTP mode: GET this URL instead of using the pool.")
        parser.add_argument("--allow-remote", action="store_true", help="Allow a --url that is not loopback.")
        parser.add_argument("--database", default="default", help="Database alias whose pool is loaded.")
        parser.add_argument("--seed", type=int, default=0, help="Random seed (reproducible think times and rows).")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON (no progress lines).")

    def handle(self, *args, **options):
        plan = LoadPlan(
            users=options["users"],
            duration=options["duration"],
            think_ms=options["think_ms"],
            ramp_up=options["ramp_up"],
            workload=options["workload"],
            sleep_ms=options["sleep_ms"],
            write_percent=options["write_percent"],
            rows=options["rows"],
            max_requests=options["max_requests"],
            url=options["url"],
            allow_remote=options["allow_remote"],
            alias=options["database"],
            seed=options["seed"],
        )
        progress = None if options["json"] else self._progress
        try:
            report = run_load(plan, progress=progress)
        except LoadTestError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
        else:
            self._render(report)
        if not report["passed"]:
            p95 = report["latency_ms"]["total"]["p95"]
            measured = f"p95 {p95} ms" if p95 is not None else "no successful request"
            raise CommandError(
                f"load test outside budget: {measured} (budget {report['budget_ms']} ms), {report['errors']} error(s)",
                returncode=1,
            )

    def _progress(self, snapshot):
        p95 = f"{snapshot['recent_p95_ms']:.1f}" if snapshot["recent_p95_ms"] is not None else "-"
        line = (
            f"{snapshot['elapsed']:6.1f} s  {snapshot['requests']:>7} requests  {snapshot['rps']:7.1f}/s  "
            f"errors {snapshot['errors']}  p95 {p95} ms"
        )
        if snapshot["pool_in_use"] is not None:
            line += f"  pool in use {snapshot['pool_in_use']} waiting {snapshot['pool_waiting']}"
        if sys.stderr.isatty():
            self.stderr.write(f"\r{line}", ending="")
        else:
            self.stderr.write(line)

    def _render(self, report):
        if sys.stderr.isatty():
            self.stderr.write("")
        write = self.stdout.write
        what = (
            f"GET {report['target']}"
            if report["mode"] == "http"
            else (f"database {report['target']}, workload {report['workload']}")
        )
        write(
            f"Load test ({what}): {report['users']} users, {report['duration_seconds']} s, "
            f"think {report['think_ms']} ms"
        )
        write(
            f"  requests {report['requests']} = {report['successes']} ok + {report['errors']} errors, "
            f"{report['throughput_rps']} req/s"
        )
        for name, summary in report["latency_ms"].items():
            if summary["p50"] is not None:
                write(
                    f"  {name:<9} p50 {summary['p50']:>8} ms  p95 {summary['p95']:>8} ms  "
                    f"p99 {summary['p99']:>8} ms  max {summary['max']:>8} ms"
                )
        for kind, count in sorted(report["errors_by_kind"].items()):
            write(self.style.ERROR(f"  error {kind}: {count}"))
        pool = report["pool"]
        if pool:
            write(
                f"  pool max {pool['max_size']}, peak size {pool['peak_size']}, peak waiting {pool['peak_waiting']}, "
                f"server saw at most {pool['peak_server_connections']} pool connections"
            )
        verdict = self.style.SUCCESS("PASS") if report["passed"] else self.style.ERROR("FAIL")
        p95 = report["latency_ms"]["total"]["p95"]
        measured = f"p95 {p95} ms" if p95 is not None else "no successful request"
        write(f"  {measured} vs budget {report['budget_ms']} ms: {verdict}")

"""The 1000-user load test through a 30-connection pool (issue: load test, self-test and benchmarks).

`manage.py loadtest`'s service with the seed's pool (20 + 10 overflow = 30 connections, 5 s checkout timeout)
on a throwaway cluster: 1000 simulated users, exponential think time (mean 2 s), mixed workload (80 % point
reads, 20 % update + insert in a transaction) on a scratch schema of 10,000 accounts.
Targets: 0 errors, p95 of checkout + query <= 100 ms. Run: .venv/bin/python bench/loadtest.py [--seconds 60]
"""

from __future__ import annotations

from harness import parser, postgres, setup_django


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seconds", type=float, default=60, help="Load duration.")
    p.add_argument("--users", type=int, default=1000, help="Simulated users.")
    args = p.parse_args()
    users, seconds = (50, 2) if args.smoke else (args.users, args.seconds)
    with postgres(DATABASE_POOL_SIZE="20", DATABASE_POOL_MAX_OVERFLOW="10", DATABASE_POOL_TIMEOUT="5"):
        setup_django()
        from dbops.loadtest import LoadPlan, run_load

        report = run_load(LoadPlan(users=users, duration=seconds, ramp_up=min(5.0, seconds / 4)))
    latency, pool = report["latency_ms"], report["pool"]
    print(
        f"loadtest: {users} users, {report['duration_seconds']} s, think {report['think_ms']} ms (mean), mixed workload"
    )
    print(f"  requests {report['requests']} ({report['throughput_rps']} req/s), errors {report['errors']}")
    for name in ("checkout", "query", "total"):
        s = latency[name]
        print(f"  {name:<9} p50 {s['p50']:>7} ms  p95 {s['p95']:>7} ms  p99 {s['p99']:>7} ms  max {s['max']:>7} ms")
    print(
        f"  pool max {pool['max_size']}: peak size {pool['peak_size']}, peak waiting {pool['peak_waiting']}, "
        f"server saw at most {pool['peak_server_connections']}"
    )
    p95 = latency["total"]["p95"]
    print(f"  ratio p95/budget {p95 / report['budget_ms']:.3f} (target <= 1), errors {report['errors']} (target 0)")


if __name__ == "__main__":
    main()

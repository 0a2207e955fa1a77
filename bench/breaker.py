"""The circuit breaker during an outage and a recovery, and its cost while healthy (issue: circuit breaker).

Two gunicorn servers (production settings, 1 worker x 4 gthreads, pool timeout 5 s) side by side, one with the
breaker and one without, against the same throwaway cluster:
  healthy   throughput ratio with/without the breaker (wrk, interleaved rounds)      target >= 0.98
  down      p99 response time while the cluster is stopped (immediate)              target <= 10 ms with
  back      time from the server accepting connections to the first 200 and to
            all-fast (1 s of only 200s, p95 < 100 ms)                               target <= 1 s / <= 2 s
Always uses its own cluster (it stops it). Run: .venv/bin/python bench/breaker.py [--rounds 6] [--smoke]
"""

from __future__ import annotations

import contextlib
import os
import time

from harness import median, parser, percentile, postgres_cluster, server_environ, setup_django
from servers import Traffic, gunicorn, load


def recovery(records, accepting_at: float) -> tuple[float, float]:
    """Seconds from `accepting_at` to the first 200, and to the start of 1 s of only fast 200s."""
    after = sorted(r for r in records if r[0] >= accepting_at)
    first_ok = next((r[0] for r in after if r[1] == 200), float("nan"))
    for i, (start, *_) in enumerate(after):
        window = [r for r in after[i:] if r[0] < start + 1.0]
        full = window and window[-1][0] > start + 0.8
        if full and all(r[1] == 200 for r in window) and percentile([r[2] for r in window], 95) < 0.1:
            return first_ok - accepting_at, start - accepting_at
    return first_ok - accepting_at, float("nan")


def main() -> None:
    args = parser(__doc__).parse_args()
    rounds, seconds, down_seconds = (1, 1, 2) if args.smoke else (args.rounds, 4, 8)
    os.environ.pop("BENCH_DATABASE_URL", None)  # this benchmark stops the server: never someone else's
    with postgres_cluster() as (url, cluster):
        setup_django()
        common = {"DJANGO_ROOT_URLCONF": "bench.urls", "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "4"}
        with contextlib.ExitStack() as stack:
            servers = {
                name: stack.enter_context(gunicorn(server_environ(url, DBOPS_BREAKER_ENABLED=flag, **common)))
                for name, flag in (("breaker", "true"), ("no breaker", "false"))
            }
            endpoint = "/bench/select-one"
            for base in servers.values():
                load(base + endpoint, seconds=1)
            rps = {name: [] for name in servers}
            for r in range(rounds):
                for name in list(servers) if r % 2 == 0 else list(reversed(servers)):
                    rps[name].append(load(servers[name] + endpoint, seconds=seconds)["rps"])

            traffic = {name: stack.enter_context(Traffic(base + endpoint)) for name, base in servers.items()}
            time.sleep(1)
            cluster.stop(mode="immediate")
            stopped_at = time.monotonic()
            time.sleep(down_seconds)
            cluster.start()  # pg_ctl -w: returns when the server accepts connections
            accepting_at = time.monotonic()
            time.sleep(4 if args.smoke else 15)
            for t in traffic.values():
                t.stop.set()

    print(f"circuit breaker: {rounds} interleaved healthy rounds x {seconds} s; outage {down_seconds} s")
    ratios = [on / off for on, off in zip(rps["breaker"], rps["no breaker"], strict=True)]
    print(
        f"  healthy throughput: breaker {median(rps['breaker']):.0f} req/s vs {median(rps['no breaker']):.0f}:"
        f" ratio {median(ratios):.3f}x (per round: {' '.join(f'{r:.2f}' for r in ratios)})"
    )
    for name, t in traffic.items():
        # Requests started during the outage (after the first second), timed to their end.
        down = [r[2] * 1000 for r in t.records if stopped_at + 1 < r[0] < accepting_at]
        statuses = sorted({r[1] for r in t.records})
        first, fast = recovery(t.records, accepting_at)
        print(
            f"  {name:<10}: down p50 {percentile(down, 50):7.1f} ms  p99 {percentile(down, 99):7.1f} ms"
            f" ({len(down)} requests)  back: first 200 after {first:5.2f} s, all fast after {fast:5.2f} s"
            f"  statuses seen {statuses}"
        )


if __name__ == "__main__":
    main()

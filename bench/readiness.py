"""Readiness latency with the pool idle vs fully checked out by other threads (issue: health checks).

Target: p95 <= 50 ms in both conditions, and no pool wait (readiness never queues behind requests).
Run: .venv/bin/python bench/readiness.py [--rounds 8] [--smoke]
"""

from __future__ import annotations

import threading
import time

from harness import median, parser, percentile, postgres, setup_django


def main() -> None:
    args = parser(__doc__).parse_args()
    requests_per_round = 5 if args.smoke else 50
    rounds = 1 if args.smoke else args.rounds
    with postgres(DBOPS_HEALTH_READY_CACHE_SECONDS="0", DATABASE_POOL_SIZE="2", DATABASE_POOL_MAX_OVERFLOW="2"):
        setup_django()
        from django.db import connection, connections
        from django.test import Client

        client = Client()

        def measure() -> tuple[list[float], int]:
            samples, failures = [], 0
            for _ in range(requests_per_round):
                started = time.perf_counter()
                response = client.get("/health/ready")
                samples.append((time.perf_counter() - started) * 1000)
                failures += response.status_code != 200
            return samples, failures

        def hold_all(release: threading.Event, ready: threading.Barrier) -> None:
            connections["default"].ensure_connection()
            ready.wait()
            release.wait()
            connections["default"].close()

        results = {"idle": [], "full": []}
        failures = {"idle": 0, "full": 0}
        max_size = connection.pool.max_size
        wait_before = connection.pool.get_stats().get("requests_wait_ms", 0)
        for _ in range(rounds):
            samples, failed = measure()
            results["idle"].append(samples)
            failures["idle"] += failed
            release, ready = threading.Event(), threading.Barrier(max_size + 1)
            holders = [threading.Thread(target=hold_all, args=(release, ready)) for _ in range(max_size)]
            for t in holders:
                t.start()
            ready.wait()
            samples, failed = measure()
            results["full"].append(samples)
            failures["full"] += failed
            release.set()
            for t in holders:
                t.join()
        print(f"readiness latency, {rounds} interleaved rounds x {requests_per_round} requests, pool max {max_size}")
        for condition, per_round in results.items():
            p50 = median([percentile(s, 50) for s in per_round])
            p95 = median([percentile(s, 95) for s in per_round])
            print(f"  pool {condition:<4}: p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  non-200 {failures[condition]}")
        ratio = median([percentile(s, 95) for s in results["full"]]) / median(
            [percentile(s, 95) for s in results["idle"]]
        )
        print(f"  p95 full/idle ratio: {ratio:.2f}x")
        waited = connection.pool.get_stats().get("requests_wait_ms", 0) - wait_before
        print(f"  pool wait during the run: {waited} ms (the holders' own checkouts included)")


if __name__ == "__main__":
    main()

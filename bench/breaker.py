"""The circuit breaker under real faults, and its cost while healthy (issues: circuit breaker; faults).

Two gunicorn servers side by side against the same throwaway cluster, production settings, 2 workers x 8
gthreads each, pool 4 + 2 overflow, pool timeout 5 s: one with the breaker (state shared through a redis-server
this benchmark starts), one without. Each has its own application_name, so the server's own count of each one's
connections is sampled from pg_stat_activity every 20 ms throughout.
  healthy     throughput ratio with/without the breaker (interleaved rounds)           target >= 0.98
  down        p99 response time while the cluster is stopped (immediate)              target <= 10 ms with
  back        from the server accepting connections: first 200, every worker serving
              again, /health/ready 200                                                 target <= 2 s
  exhausted   every pooled connection held by slow queries: worst 503 latency          target <= pool timeout + 0.5 s
  connections peak server connections of each server against its budget
              (2 workers x pool max 6 + a probe connection each = 14)                  target never above
  log lines   per outage: breaker transitions, Django's request errors, psycopg_pool warnings
Always uses its own cluster (it stops it). Run: .venv/bin/python bench/breaker.py [--rounds 6] [--smoke]
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time

from harness import median, parser, percentile, postgres_cluster, server_environ, setup_django

from tests.parts.servers import ConnectionSampler, Traffic, free_port, gunicorn, http_get, load

POOL_TIMEOUT = 5
POOL_MAX = 6
WORKERS = 2
THREADS = 8  # more threads than pooled connections: slow requests can hold every one of them
BUDGET = WORKERS * POOL_MAX + WORKERS


@contextlib.contextmanager
def redis():
    """Yield a redis:// URL of a throwaway redis-server, or None when none is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


class ReadinessWatch:
    """Poll /health/ready every 50 ms, recording (time, status)."""

    def __init__(self, base: str) -> None:
        self.base, self.records = base, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                status = http_get(self.base + "/health/ready", timeout=5)[0]
            except OSError:
                status = 0
            self.records.append((started, status))
            time.sleep(0.05)

    def __enter__(self) -> ReadinessWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def since(accepting_at: float, moments: list[float]) -> float:
    later = [m for m in moments if m >= accepting_at]
    return min(later) - accepting_at if later else float("nan")


def every_worker_back(records, accepting_at: float) -> float:
    """Seconds from `accepting_at` until each worker (pid in the body) has served a 200."""
    workers = {r[4] for r in records if r[1] == 200 and r[0] < accepting_at}
    firsts = [since(accepting_at, [r[0] for r in records if r[1] == 200 and r[4] == pid]) for pid in workers]
    return max(firsts) if firsts else float("nan")


def log_counts(lines: list[bytes], start: int) -> dict[str, int]:
    text = b"".join(lines[start:]).decode(errors="replace")
    return {
        "transitions": len(re.findall(r'"event": "breaker_transition"', text)),
        "request errors": len(re.findall(r"ERROR django\.request", text)),
        "pool warnings": len(re.findall(r"psycopg\.pool", text)),
    }


def main() -> None:
    args = parser(__doc__).parse_args()
    rounds, seconds, down_seconds = (1, 1, 2) if args.smoke else (args.rounds, 4, 8)
    os.environ.pop("BENCH_DATABASE_URL", None)  # this benchmark stops the server: never someone else's
    with postgres_cluster() as (url, cluster), redis() as cache_url:
        setup_django()
        names = {"breaker": "bench-breaker", "no breaker": "bench-no-breaker"}
        common = {
            "DJANGO_ROOT_URLCONF": "bench.urls",
            "WEB_CONCURRENCY": str(WORKERS),
            "GUNICORN_THREADS": str(THREADS),
            "DATABASE_POOL_SIZE": "4",
            "DATABASE_POOL_MAX_OVERFLOW": str(POOL_MAX - 4),
            "DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT),
        }
        logs: dict[str, list[bytes]] = {name: [] for name in names}
        with contextlib.ExitStack() as stack:
            servers = {}
            for name, flag in (("breaker", "true"), ("no breaker", "false")):
                extra = {"CACHE_URL": cache_url} if cache_url and flag == "true" else {}
                env = server_environ(
                    url, DBOPS_BREAKER_ENABLED=flag, DATABASE_APPLICATION_NAME=names[name], **common, **extra
                )
                servers[name] = stack.enter_context(gunicorn(env, log=logs[name]))
            sampler = stack.enter_context(ConnectionSampler(url, list(names.values())))
            for base in servers.values():
                load(base + "/bench/select-one", seconds=1)
            rps = {name: [] for name in servers}
            for r in range(rounds):
                for name in list(servers) if r % 2 == 0 else list(reversed(servers)):
                    rps[name].append(load(servers[name] + "/bench/select-one", seconds=seconds)["rps"])

            log_start = {name: len(lines) for name, lines in logs.items()}
            traffic = {
                name: stack.enter_context(Traffic(base + "/bench/worker", threads=8)) for name, base in servers.items()
            }
            ready = {name: stack.enter_context(ReadinessWatch(base)) for name, base in servers.items()}
            time.sleep(2)
            cluster.stop(mode="immediate")
            stopped_at = time.monotonic()
            time.sleep(down_seconds)
            cluster.start()  # pg_ctl -w: returns when the server accepts connections
            accepting_at = time.monotonic()
            time.sleep(2 if args.smoke else 10)
            for watcher in [*traffic.values(), *ready.values()]:
                watcher.stop.set()
            outage_logs = {name: log_counts(lines, log_start[name]) for name, lines in logs.items()}

            # Every pooled connection busy for longer than the pool timeout; a request for every server thread.
            hold_ms = (POOL_TIMEOUT + 2) * 1000
            held = {
                name: stack.enter_context(Traffic(base + f"/bench/sleep?ms={hold_ms}", threads=WORKERS * THREADS))
                for name, base in servers.items()
            }
            time.sleep(3 if args.smoke else 15)
            for t in held.values():
                t.stop.set()

    print(
        f"circuit breaker: {rounds} interleaved healthy rounds x {seconds} s; outage {down_seconds} s; "
        f"{WORKERS} workers each; shared state: {'redis' if cache_url else 'per process (no redis-server)'}"
    )
    ratios = [on / off for on, off in zip(rps["breaker"], rps["no breaker"], strict=True)]
    print(
        f"  healthy throughput: breaker {median(rps['breaker']):.0f} req/s vs {median(rps['no breaker']):.0f}:"
        f" ratio {median(ratios):.3f}x (per round: {' '.join(f'{r:.2f}' for r in ratios)})"
    )
    for name, t in traffic.items():
        records = list(t.records)
        down = [r[2] * 1000 for r in records if stopped_at + 1 < r[0] < accepting_at]
        statuses = sorted({r[1] for r in records + list(held[name].records)})
        first = since(accepting_at, [r[0] for r in records if r[1] == 200])
        ready_at = since(accepting_at, [m for m, status in ready[name].records if status == 200])
        exhausted = [r[2] for r in held[name].records if r[1] == 503]
        print(
            f"  {name:<10}: down p99 {percentile(down, 99):7.1f} ms ({len(down)} requests)"
            f" | back: first 200 {first:5.2f} s, every worker {every_worker_back(records, accepting_at):5.2f} s,"
            f" ready {ready_at:5.2f} s"
            f" | exhausted: worst 503 {max(exhausted, default=float('nan')):5.2f} s (target <= {POOL_TIMEOUT + 0.5} s)"
            f" | peak connections {sampler.peak[names[name]]} of budget {BUDGET}"
            f" | log lines per outage {outage_logs[name]} | statuses {statuses}"
        )


if __name__ == "__main__":
    main()

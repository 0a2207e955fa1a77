"""Load test: N simulated users with think time, through the real pool of an alias (or HTTP against a server).

Each user is a thread that thinks (exponential, mean `think_ms`), then does one "request" the way a gthread
worker does: check a connection out of Django's pool (timed: the checkout wait), run the workload (timed: the
query time), give the connection back. The workload runs on a scratch schema created for the run and dropped
after it. A monitor samples the pool and the server's own count of the pool's connections. Bounded by a
duration and optionally a request count; it stops by itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import random
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

from django.db import connections, transaction
from psycopg import sql

from dbops.conf import get_config
from dbops.database.pool import direct_connection, pool_max_size, pool_stats
from dbops.database.rows import one_row
from dbops.exceptions import DbopsError
from dbops.monitoring.window import percentile

WORKLOADS = ("mixed", "read", "sleep")
MONITOR_APPLICATION_NAME = "dbops-loadtest-monitor"
THREAD_STACK_BYTES = 512 * 1024  # 1000 threads x the default 8 MiB of virtual stack is needless

Progress = Callable[[dict], None]


class LoadTestError(DbopsError):
    """The load test cannot start (bad plan, remote URL without permission, no pool)."""


@dataclasses.dataclass(frozen=True)
class LoadPlan:
    """What to simulate."""

    users: int = 1000
    duration: float = 30.0
    think_ms: int = 2000
    ramp_up: float = 5.0
    workload: str = "mixed"
    sleep_ms: int = 150
    write_percent: int = 20
    rows: int = 10_000
    max_requests: int | None = None
    url: str | None = None
    allow_remote: bool = False
    alias: str = "default"
    seed: int = 0

    def validate(self) -> None:
        for option, value, valid, wanted in (
            ("--users", self.users, self.users >= 1, ">= 1"),
            ("--duration", self.duration, self.duration > 0, "> 0 seconds"),
            ("--think-ms", self.think_ms, self.think_ms >= 0, ">= 0"),
            ("--ramp-up", self.ramp_up, self.ramp_up >= 0, ">= 0 seconds"),
            ("--rows", self.rows, self.rows >= 1, ">= 1"),
            ("--max-requests", self.max_requests, self.max_requests is None or self.max_requests >= 1, ">= 1"),
        ):
            if not valid:
                raise LoadTestError(f"{option} {value} is not allowed: it must be {wanted}")
        if self.workload not in WORKLOADS:
            raise LoadTestError(f"workload must be one of {', '.join(WORKLOADS)}")
        if not 0 <= self.write_percent <= 100:
            raise LoadTestError("write percent must be between 0 and 100")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise LoadTestError(f"--url must be an http(s) URL, got {self.url!r}")
            if not self.allow_remote and not _is_loopback_host(parts.hostname):
                raise LoadTestError(f"{parts.hostname} is not a loopback address: pass --allow-remote to load it")
            _require_answer(self.url)
        elif pool_max_size(self.alias) is None:
            raise LoadTestError(f"database {self.alias!r} has no connection pool: the load test measures the pool")


def _require_answer(url: str) -> None:
    """Send one GET before the load starts: a server that is not there is one clear line, not a report of errors."""
    try:
        with urllib.request.urlopen(url, timeout=10):  # noqa: S310 - validated http(s)
            return
    except urllib.error.HTTPError:
        return  # it answers; the load test reports its status codes
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LoadTestError(f"{url} does not answer ({reason}): start the server, or fix --url") from None


def _is_loopback_host(host: str) -> bool:
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


class _Recorder:
    """Thread-safe counters and samples of one run."""

    def __init__(self, max_requests: int | None) -> None:
        self.lock = threading.Lock()
        self.max_requests = max_requests
        self.started = 0
        self.successes = 0
        self.errors: Counter[str] = Counter()
        self.checkout_ms: list[float] = []
        self.query_ms: list[float] = []
        self.total_ms: list[float] = []

    def claim(self) -> bool:
        """Reserve one request; False once `max_requests` were started."""
        with self.lock:
            if self.max_requests is not None and self.started >= self.max_requests:
                return False
            self.started += 1
            return True

    def success(self, checkout_ms: float | None, query_ms: float | None, total_ms: float) -> None:
        with self.lock:
            self.successes += 1
            if checkout_ms is not None and query_ms is not None:
                self.checkout_ms.append(checkout_ms)
                self.query_ms.append(query_ms)
            self.total_ms.append(total_ms)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1

    def snapshot(self) -> tuple[int, int, int, list[float]]:
        with self.lock:
            return self.started, self.successes, sum(self.errors.values()), list(self.total_ms[-2000:])


def _error_kind(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{type(exc).__name__}({type(cause).__name__})" if cause is not None else type(exc).__name__


class _ScratchSchema:
    """A schema with accounts and events for the mixed workload, dropped when the run ends."""

    def __init__(self, alias: str, rows: int) -> None:
        self.alias = alias
        self.rows = rows
        self.name = f"dbops_loadtest_{secrets.token_hex(4)}"

    def __enter__(self) -> _ScratchSchema:
        schema = sql.Identifier(self.name)
        with direct_connection(self.alias, timeout=10, statement_timeout=0) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {}.accounts (id bigint PRIMARY KEY, balance numeric NOT NULL DEFAULT 0, "
                    "updated_at timestamptz NOT NULL DEFAULT now())"
                ).format(schema)
            )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {}.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                    "account_id bigint NOT NULL, amount numeric NOT NULL, at timestamptz NOT NULL DEFAULT now())"
                ).format(schema)
            )
            conn.execute(
                sql.SQL("INSERT INTO {}.accounts (id) SELECT generate_series(1, %s)").format(schema), [self.rows]
            )
            conn.execute(sql.SQL("ANALYZE {}.accounts").format(schema))
        return self

    def __exit__(self, *exc) -> None:
        with direct_connection(self.alias, timeout=10, statement_timeout=0) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.name)))

    def statements(self) -> dict[str, str]:
        schema = sql.Identifier(self.name)
        return {
            key: sql.SQL(text).format(schema).as_string(None)
            for key, text in {
                "read": "SELECT id, balance FROM {}.accounts WHERE id = %s",
                "update": "UPDATE {}.accounts SET balance = balance + %s, updated_at = now() WHERE id = %s",
                "insert": "INSERT INTO {}.events (account_id, amount) VALUES (%s, %s)",
            }.items()
        }


def _database_request(plan: LoadPlan, statements: dict[str, str], rng: random.Random) -> None:
    """Run one request's statements on the thread's checked-out connection."""
    connection = connections[plan.alias]
    with connection.cursor() as cursor:
        if plan.workload == "sleep":
            cursor.execute("SELECT pg_sleep(%s)", [plan.sleep_ms / 1000])
            return
        account = rng.randint(1, plan.rows)
        if plan.workload == "mixed" and rng.randrange(100) < plan.write_percent:
            amount = rng.randint(-100, 100)
            with transaction.atomic(using=plan.alias):
                cursor.execute(statements["update"], [amount, account])
                cursor.execute(statements["insert"], [account, amount])
        else:
            cursor.execute(statements["read"], [account])
            cursor.fetchall()


def _user(index: int, plan: LoadPlan, recorder: _Recorder, stop: threading.Event, statements: dict[str, str]) -> None:
    rng = random.Random(plan.seed * 1_000_003 + index)  # noqa: S311 - simulated think times, not secrets
    if stop.wait(plan.ramp_up * index / plan.users):
        return
    think = plan.think_ms / 1000
    while not stop.is_set():
        if think and stop.wait(rng.expovariate(1 / think)):
            return
        if not recorder.claim():
            return
        started = time.perf_counter()
        if plan.url is not None:
            try:
                with urllib.request.urlopen(plan.url, timeout=30) as response:  # noqa: S310 - validated http(s)
                    response.read()
                recorder.success(None, None, (time.perf_counter() - started) * 1000)
            except urllib.error.HTTPError as exc:
                recorder.error(f"HTTP {exc.code}")
            except OSError as exc:
                recorder.error(type(exc).__name__)
            continue
        connection = connections[plan.alias]
        try:
            connection.ensure_connection()
            checked_out = time.perf_counter()
            _database_request(plan, statements, rng)
            done = time.perf_counter()
            recorder.success((checked_out - started) * 1000, (done - checked_out) * 1000, (done - started) * 1000)
        except Exception as exc:
            recorder.error(_error_kind(exc))
        finally:
            connection.close()  # back to the pool, as at the end of a request


class _Monitor:
    """Sample the pool and the server's count of the pool's connections while the load runs."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.application_name = connections[alias].settings_dict.get("OPTIONS", {}).get("application_name", "")
        self.peak_server_connections = 0
        self.peak_pool_size = 0
        self.peak_waiting = 0
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="dbops-loadtest-monitor")
        self.error = ""

    def server_connections(self, conn) -> int:
        return one_row(
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
                [self.application_name],
            )
        )[0]

    def _run(self) -> None:
        try:
            with direct_connection(self.alias, timeout=5) as conn:
                conn.execute("SELECT set_config('application_name', %s, false)", [MONITOR_APPLICATION_NAME])
                while not self.stop.wait(0.25):
                    self.peak_server_connections = max(self.peak_server_connections, self.server_connections(conn))
                    stats = pool_stats(self.alias) or {}
                    self.peak_pool_size = max(self.peak_pool_size, stats.get("pool_size", 0))
                    self.peak_waiting = max(self.peak_waiting, stats.get("requests_waiting", 0))
                    self.samples += 1
        except Exception as exc:
            self.error = _error_kind(exc)

    def __enter__(self) -> _Monitor:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def _summary(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    return {
        "p50": round(percentile(samples, 50), 2),
        "p95": round(percentile(samples, 95), 2),
        "p99": round(percentile(samples, 99), 2),
        "max": round(max(samples), 2),
    }


def _settled_pool(alias: str, application_name: str) -> dict:
    """Pool size and the server's count of its connections, read at the same quiet moment after the run."""
    stats = pool_stats(alias) or {}
    with direct_connection(alias, timeout=5) as conn:
        conn.execute("SELECT set_config('application_name', %s, false)", [MONITOR_APPLICATION_NAME])
        server = one_row(
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
                [application_name],
            )
        )[0]
    return {"pool_size": stats.get("pool_size"), "server_connections": server}


def run_load(plan: LoadPlan, *, progress: Progress | None = None) -> dict:
    """Run the plan and return the report (see `passed` for the verdict against the latency budget)."""
    plan.validate()
    threshold = get_config().performance_threshold_ms
    recorder = _Recorder(plan.max_requests)
    stop = threading.Event()
    scratch = contextlib.nullcontext() if plan.url else _ScratchSchema(plan.alias, plan.rows)
    monitor = _Monitor(plan.alias) if plan.url is None else None
    with scratch as schema:
        statements = schema.statements() if schema else {}
        previous_stack = threading.stack_size(THREAD_STACK_BYTES)
        try:
            threads = [
                threading.Thread(target=_user, args=(i, plan, recorder, stop, statements), daemon=True)
                for i in range(plan.users)
            ]
        finally:
            threading.stack_size(previous_stack)
        pool_before = pool_stats(plan.alias) if monitor else None
        started = time.monotonic()
        with monitor or contextlib.nullcontext():
            for thread in threads:
                thread.start()
            deadline = started + plan.duration
            while time.monotonic() < deadline and any(t.is_alive() for t in threads):
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                if progress:
                    progress(_progress(recorder, started, None if plan.url else plan.alias, threshold))
            stop.set()
            grace = time.monotonic() + 30
            for thread in threads:
                thread.join(timeout=max(0.0, grace - time.monotonic()))
        elapsed = time.monotonic() - started
        stragglers = sum(1 for t in threads if t.is_alive())
        settled = _settled_pool(plan.alias, monitor.application_name) if monitor else None
        pool_after = pool_stats(plan.alias) if monitor else None
    total = _summary(recorder.total_ms)
    errors = dict(recorder.errors)
    requests = recorder.successes + sum(errors.values())
    passed = not errors and total["p95"] is not None and total["p95"] <= threshold and not stragglers
    return {
        "mode": "http" if plan.url else "database",
        "target": plan.url or plan.alias,
        "workload": None if plan.url else plan.workload,
        "users": plan.users,
        "duration_seconds": round(elapsed, 2),
        "think_ms": plan.think_ms,
        "requests": requests,
        "started": recorder.started,
        "successes": recorder.successes,
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "throughput_rps": round(requests / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {
            "checkout": _summary(recorder.checkout_ms),
            "query": _summary(recorder.query_ms),
            "total": total,
        },
        "budget_ms": threshold,
        "pool": None
        if monitor is None
        else {
            "max_size": pool_max_size(plan.alias),
            "before": pool_before,
            "after": pool_after,
            "peak_size": monitor.peak_pool_size,
            "peak_waiting": monitor.peak_waiting,
            "peak_server_connections": monitor.peak_server_connections,
            "settled": settled,
            "monitor_error": monitor.error or None,
        },
        "unfinished_users": stragglers,
        "passed": passed,
    }


def _progress(recorder: _Recorder, started: float, alias: str | None, threshold: int) -> dict:
    """Progress so far; `alias` None in HTTP mode (this process' own pool is not what is being loaded)."""
    requests, successes, errors, recent = recorder.snapshot()
    elapsed = time.monotonic() - started
    stats = (pool_stats(alias) or {}) if alias else {}
    return {
        "elapsed": elapsed,
        "requests": requests,
        "errors": errors,
        "rps": requests / elapsed if elapsed else 0.0,
        "recent_p95_ms": percentile(recent, 95) if recent else None,
        "pool_in_use": stats.get("in_use"),
        "pool_waiting": stats.get("requests_waiting"),
        "budget_ms": threshold,
    }

"""Real faults: a server restart, a database that is not there, two workers sharing Redis through outages.

Assertions are about behaviour (who answered, what was logged, how many connections the server saw), never about
this machine's speed: bounds on time are there only so a broken recovery fails instead of hanging, and are an
order of magnitude above what recovery takes (bench/breaker.py measures it).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection

from dbops.database.pool import COMMAND_POOL_MAX_SIZE
from dbops.health.database import select_one_latency_ms
from dbops.localdb import free_port
from tests import PROJECT_DIR
from tests.conftest import test_database_connection
from tests.parts.servers import ConnectionSampler, Traffic, wait_for_port
from tests.parts.site import gunicorn, http_get, manage, production_environ, url_of_test_database

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
RECOVERY_BOUND = 20.0  # seconds; a guard against hanging, not a budget (the stock pool took ~45 s here)


def server_pids(application_name: str) -> set[int]:
    with test_database_connection() as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name])
        return {row[0] for row in rows}


def test_pool__after_a_server_restart_the_next_checkout_and_probe_work(pg_cluster):
    pool = connection.pool
    pool.open(wait=True)  # its idle connections, all about to die with the server
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        before = cursor.fetchone()[0]
    connection.close()

    pg_cluster.stop(mode="fast")
    pg_cluster.start()

    select_one_latency_ms("default", timeout=5.0)  # the readiness probe borrows an idle pooled connection
    with connection.cursor() as cursor:  # and so does an ordinary request
        cursor.execute("SELECT pg_backend_pid()")
        after = cursor.fetchone()[0]
    connection.close()
    assert after != before
    assert pool.get_stats()["pool_size"] <= pool.max_size


@contextlib.contextmanager
def runserver(environ: dict[str, str]):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=PROJECT_DIR,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("breaker", ["true", "false"])
@pytest.mark.parametrize("serve", ["gunicorn", "runserver"])
def test_readiness__turns_ready_once_a_restarted_server_accepts_connections(tmp_path, pg_cluster, serve, breaker):
    environ = production_environ(tmp_path / "static", DBOPS_BREAKER_ENABLED=breaker, WEB_CONCURRENCY="1")
    if serve == "runserver":
        environ = {**environ, "DJANGO_ENV": "development", "DEBUG": "false"}
    server = gunicorn(environ) if serve == "gunicorn" else runserver(environ)
    with server as base:
        deadline = time.monotonic() + RECOVERY_BOUND
        while http_get(base + "/health/ready")[0] != 200:
            assert time.monotonic() < deadline, "never ready before the restart"
            time.sleep(0.1)
        pg_cluster.stop(mode="fast")
        while http_get(base + "/health/ready")[0] != 503:  # once the cached answer of before has expired
            assert time.monotonic() < deadline + RECOVERY_BOUND, "readiness never noticed the server was gone"
            time.sleep(0.1)
        pg_cluster.start()  # returns once the server accepts connections
        accepted_at = time.monotonic()
        while (status := http_get(base + "/health/ready")[0]) != 200:
            assert status == 503
            assert time.monotonic() - accepted_at < RECOVERY_BOUND, "readiness stayed 503 after the restart"
            time.sleep(0.05)


DATABASE_COMMANDS = [
    ["alerts", "evaluate"],
    ["backup"],
    ["backup_list"],
    ["backup_prune", "--dry-run"],
    ["backup_restore", "--id", "1", "--noinput"],
    ["backup_verify"],
    ["migration_apply"],
    ["migration_report"],
    ["migration_rollback", "dbops", "0001"],
    ["migration_rewrite", "dbops", "0001"],
]


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=[c[0] for c in DATABASE_COMMANDS])
def test_command__with_the_database_down_says_so_in_one_line_and_exits_3(command):
    port = free_port()  # nothing listens there
    result = manage(*command, DATABASE_URL=f"postgres://app:S3cretPw@127.0.0.1:{port}/app")
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines() == [
        f"CommandError: database 'default' at 127.0.0.1:{port} is unreachable (OperationalError): start the "
        "server or fix DATABASE_URL, then run the command again"
    ]
    assert "S3cretPw" not in result.stdout + result.stderr


def test_command__runs_with_a_small_pool_not_the_web_minimum():
    show = (
        "from django.db import connection as c; c.ensure_connection(); c.pool.wait(); "
        "print(c.pool.min_size, c.pool.max_size, c.pool.get_stats()['pool_size'])"
    )
    result = manage("shell", "-c", show, DATABASE_URL=url_of_test_database(), DATABASE_POOL_SIZE="5")
    assert result.returncode == 0, result.stderr
    min_size, max_size, size = map(int, result.stdout.strip().splitlines()[-1].split())
    assert (min_size, max_size) == (1, COMMAND_POOL_MAX_SIZE) and size <= COMMAND_POOL_MAX_SIZE


class WebhookReceiver:
    """A webhook endpoint on loopback that records the alerts it is sent."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def firing(self, rule: str) -> list[dict]:
        return [alert for alert in self.received if alert.get("rule") == rule and alert.get("state") == "firing"]


def outage(pg_cluster, traffic: Traffic, workers: set[str]) -> None:
    """Kill the server under load, wait for the breaker to open, start it; wait until every worker serves."""
    pg_cluster.stop(mode="immediate")
    stopped_at = time.monotonic()
    traffic.wait_for(lambda r: r[3] == "open" and r[0] > stopped_at, timeout=RECOVERY_BOUND)
    time.sleep(1.0)
    pg_cluster.start()
    started_at = time.monotonic()
    for pid in workers:
        traffic.wait_for(lambda r, pid=pid: r[1] == 200 and r[0] > started_at and r[4] == pid, timeout=RECOVERY_BOUND)


def test_breaker__two_workers_through_outages_and_a_full_pool(tmp_path, pg_cluster, redis_server):
    webhook = WebhookReceiver()
    name = "dbops-faults"
    environ = production_environ(
        tmp_path / "static",
        DJANGO_ROOT_URLCONF="bench.urls",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="6",  # more threads than pooled connections: slow requests can hold every one
        DATABASE_POOL_SIZE="2",
        DATABASE_POOL_MAX_OVERFLOW="2",
        DATABASE_POOL_TIMEOUT="2",
        DATABASE_APPLICATION_NAME=name,
        CACHE_URL=redis_server,
        DBOPS_BREAKER_FAILURE_THRESHOLD="3",
        DBOPS_BREAKER_PROBE_INTERVAL="1",
        DBOPS_ALERT_EVENTS="true",
        DBOPS_ALERT_WEBHOOK_URL=webhook.url,
    )
    budget = 2 * 4 + 2  # two workers' pools at max, and a probe connection each
    lines: list[bytes] = []
    with gunicorn(environ, log=lines) as base, ConnectionSampler(url_of_test_database(), [name]) as sampler:
        with Traffic(base + "/bench/worker", threads=8) as traffic:
            traffic.wait_for(lambda r: r[1] == 200, timeout=RECOVERY_BOUND)
            deadline = time.monotonic() + RECOVERY_BOUND
            while len(workers := {r[4] for r in list(traffic.records) if r[1] == 200}) < 2:
                assert time.monotonic() < deadline, "the second worker never served"
                time.sleep(0.05)
            outage(pg_cluster, traffic, workers)
            closed_at = traffic.wait_for(lambda r: r[1] == 200 and r[3] == "", timeout=RECOVERY_BOUND)
            time.sleep(1.5)  # alerts of the recovery, if any, arrive now
            after_first = len(webhook.firing("breaker_open"))
            outage(pg_cluster, traffic, workers)
            traffic.wait_for(lambda r: r[1] == 200 and r[3] == "" and r[0] > closed_at + 3, timeout=RECOVERY_BOUND)
            time.sleep(1.5)
            records = list(traffic.records)
        # Every pooled connection held by slow requests, and more requests queueing behind them.
        with Traffic(base + "/bench/sleep?ms=3000", threads=16) as held:
            time.sleep(6)
        held_records = list(held.records)
    log = b"".join(lines).decode(errors="replace")

    assert {r[1] for r in records + held_records} <= {200, 503}, "never a 500"
    assert any(r[1] == 503 for r in held_records), "the pool was never exhausted"
    peak = sampler.peak[name]
    assert sampler.samples > 100 and peak <= budget, f"{peak} server connections, budget {budget}"

    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    # In the order they happened (the generation): two workers' lines can reach the log the other way round.
    logged = sorted((e for e in events if e.get("event") == "breaker_transition"), key=lambda e: e["generation"])
    transitions = [(e["old"], e["new"]) for e in logged]
    # One line per transition, whatever the workers: the lines chain (a duplicate would repeat a "from"); a
    # failed trial (half_open -> open) is a legal step, so the walk is checked rather than spelled out.
    assert transitions[0] == ("closed", "open"), transitions
    assert all(before[1] == after[0] for before, after in zip(transitions, transitions[1:], strict=False)), transitions
    assert transitions.count(("closed", "open")) >= 2 and transitions.count(("half_open", "closed")) >= 2
    assert "Service Unavailable" not in log  # Django's per-503 ERROR lines stay out of the log

    assert after_first == 1, webhook.received  # one notice for the first outage, nothing for its recovery
    assert len(webhook.firing("breaker_open")) >= 2, json.dumps(webhook.received)  # the second outage is notified again
    assert not any("half_open" in alert.get("message", "") for alert in webhook.received)


def test_breaker__two_processes_that_see_the_same_failures_make_one_transition(redis_server, settings):
    from dbops.breaker.state import CacheStateStore, CircuitBreaker, FallbackStore, State
    from dbops.conf import BreakerConfig
    from dbops.signals import breaker_transition

    settings.CACHES = {**settings.CACHES, "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                                     "LOCATION": redis_server}}  # fmt: skip
    both_loaded = threading.Barrier(2)

    class SlowToSave(CacheStateStore):
        """Both processes read CLOSED before either writes OPEN: the race two gunicorn workers lost."""

        def load(self):
            state = super().load()
            with contextlib.suppress(threading.BrokenBarrierError):
                both_loaded.wait(timeout=5)
            return state

    class Unprobed(CircuitBreaker):
        def _ensure_prober(self):
            pass  # this test is about the transition; no probe thread may outlive it

    config = BreakerConfig(cache_alias="shared")
    workers = [Unprobed(config, FallbackStore(SlowToSave("shared", prefix="dbops:test-race"))) for _ in "ab"]
    sent = []

    def record(sender, old, new, **kwargs):
        sent.append((old, new))

    breaker_transition.connect(record, dispatch_uid="test-race")
    try:
        threads = [
            threading.Thread(target=w._transition, args=(State.OPEN, "failures"), kwargs={"expected": State.CLOSED})
            for w in workers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        breaker_transition.disconnect(dispatch_uid="test-race")
    assert sent == [(State.CLOSED, State.OPEN)]
    assert workers[0].store.load().state == State.OPEN


@pytest.mark.database
def test_repeated_message_filter__passes_one_per_interval_and_counts_the_rest():
    import logging

    from dbops.monitoring.log_filters import RepeatedMessageFilter

    repeats = RepeatedMessageFilter(interval=3600)
    records = [logging.makeLogRecord({"name": "psycopg.pool", "msg": "error connecting in %r: %s"}) for _ in range(5)]
    other = logging.makeLogRecord({"name": "psycopg.pool", "msg": "discarding closed connection: %s"})
    assert [repeats.filter(r) for r in records] == [True, False, False, False, False]
    assert repeats.filter(other) is True
    repeats.interval = 0  # the interval has passed: the next one says how many were held back
    later = logging.makeLogRecord({"name": "psycopg.pool", "msg": "error connecting in %r: %s"})
    assert repeats.filter(later) is True and "(4 more like this" in later.msg

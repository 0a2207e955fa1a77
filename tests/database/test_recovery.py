"""Back when the database is back: every worker serves again right after the server's return, whatever the outage.

Real gunicorn (2 workers x 4 threads) + PostgreSQL + Redis. The breaker may or may not have opened: recovery must
not depend on it (a 2 s outage never opens it; an outage with no traffic cannot).
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.parts.site import gunicorn, http_get, production_environ

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]

# Seconds after `pg_ctl start -w` returns. The time itself is bench/recovery.py's (0.07 s, docs/benchmarks.md): this
# bound tells recovery from waiting out psycopg_pool's reconnect backoff (7-11 s), with room for both cores being
# busy. (Its failures under load were not time: a checkout waiting in the pool another thread replaced got "pool
# closed"; it now moves to the new pool.)
SERVE_WITHIN = 1.0
CHECKED_FOR = 3.0  # seconds of requests after that, every one of which must succeed


def site_environ(tmp_path, redis_server, **extra):
    settings = {
        "DJANGO_ROOT_URLCONF": "bench.urls",
        "CACHE_URL": redis_server,
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "DATABASE_POOL_TIMEOUT": "5",
        "DBOPS_HEALTH_READY_CACHE_SECONDS": "0",
    }
    return production_environ(tmp_path / "static", **{**settings, **extra})


def keep_asking(url: str, seconds: float, *, clients: int = 8) -> list[tuple[int, str, float]]:
    """Ask `url` from `clients` threads at once for `seconds` (at once: gunicorn's workers then both accept)."""
    answers: list[tuple[int, str]] = []
    until = time.monotonic() + seconds

    def ask() -> None:
        while time.monotonic() < until:
            sent = time.monotonic()
            answers.append((*http_get(url, timeout=15), sent))

    threads = [threading.Thread(target=ask) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def in_flight(base: str, started: list[threading.Thread]) -> None:
    """Start requests that are inside a 3 s query when the server goes away."""
    for _ in range(4):
        thread = threading.Thread(target=http_get, args=(base + "/bench/sleep?ms=3000",), kwargs={"timeout": 20})
        thread.start()
        started.append(thread)
    time.sleep(0.5)


OUTAGES = {
    # name: (seconds down, what arrives meanwhile)
    "two_seconds": (2, "/bench/worker"),
    "db_free_traffic_only": (6, "/favicon.ico"),
    "no_traffic": (6, None),
    # psycopg_pool's reconnect backoff doubles per failed attempt (1, 2, 4, 8 s ...): past 15 s it waits 8 s or more.
    # bench/recovery.py runs a 2-minute outage.
    "long": (25, "/bench/worker"),
    "restart_with_requests_in_flight": (1, "in-flight"),
}


@pytest.mark.parametrize("outage", OUTAGES)
def test_recovery__every_worker_serves_again_right_after_the_servers_return(tmp_path, pg_cluster, redis_server, outage):
    down_for, meanwhile = OUTAGES[outage]
    threads: list[threading.Thread] = []
    log: list[bytes] = []
    with gunicorn(site_environ(tmp_path, redis_server), log=log) as base:
        assert len({body for _, body, _ in keep_asking(base + "/bench/worker", 2)}) == 2, "both workers served before"
        if meanwhile == "in-flight":
            in_flight(base, threads)
        pg_cluster.stop(mode="immediate")
        if meanwhile in (None, "in-flight"):
            time.sleep(down_for)
        else:
            statuses = {status for status, _, _ in keep_asking(base + meanwhile, down_for, clients=1)}
            assert 500 not in statuses
        pg_cluster.start()  # pg_ctl start -w: returns once the server accepts connections
        started = time.monotonic()
        time.sleep(SERVE_WITHIN)
        answers = keep_asking(base + "/bench/worker", CHECKED_FOR)
        for thread in threads:
            thread.join(timeout=30)
    failed = [(status, round(sent - started, 2), body[:120]) for status, body, sent in answers if status != 200]
    lines = [line for line in b"".join(log).decode(errors="replace").splitlines() if "GET " not in line]
    assert not failed, (
        f"{len(failed)} of {len(answers)} failed ({failed[:3]} .. {failed[-3:]} s after the restart):\n"
        + ("\n".join(lines[-40:]))
    )
    assert len({body for _, body, _ in answers}) == 2, "both workers served after the restart"


def test_readiness__never_ready_while_this_worker_cannot_serve(tmp_path, pg_cluster, redis_server):
    """One worker: every 200 from /health/ready is followed by a /bench/worker that succeeds, through an outage."""
    environ = site_environ(tmp_path, redis_server, WEB_CONCURRENCY="1")
    pairs = []
    log: list[bytes] = []
    with gunicorn(environ, log=log) as base:
        pg_cluster.stop(mode="immediate")
        for _ in range(10):
            pairs.append((http_get(base + "/health/ready")[0], http_get(base + "/bench/worker", timeout=15)[0]))
        pg_cluster.start()
        until = time.monotonic() + 3
        while time.monotonic() < until:
            pairs.append((http_get(base + "/health/ready")[0], http_get(base + "/bench/worker", timeout=15)[0]))
    assert (503, 503) in pairs and (200, 200) in pairs
    assert not [pair for pair in pairs if pair[0] == 200 and pair[1] != 200], pairs
    # One line per change of readiness, not one per probe; an expected outage logs no traceback.
    text = b"".join(log).decode(errors="replace")
    changes = [json.loads(line) for line in text.splitlines() if '"readiness_changed"' in line]
    assert [c["levelname"] for c in changes] == ["WARNING", "INFO"], changes
    assert "Traceback" not in text and "Service Unavailable" not in text

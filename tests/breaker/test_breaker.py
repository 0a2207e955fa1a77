"""The circuit breaker against real outages: a stopped cluster, a full pool, Redis shared by two servers."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest
from django.db import OperationalError, connection
from django.test import Client, override_settings
from django.urls import include, path

from dbops.breaker import state as breaker_module
from dbops.breaker.outages import is_database_outage
from dbops.breaker.state import CacheStateStore, CircuitBreaker, FallbackStore, LocalStateStore, State, get_breaker
from dbops.conf import BreakerConfig
from dbops.signals import breaker_transition
from tests.conftest import reconfigured_pool
from tests.parts.servers import Traffic
from tests.parts.site import gunicorn, http_get, production_environ

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def breaker_environ(tmp_path, **extra):
    settings = {
        "DJANGO_ROOT_URLCONF": "bench.urls",
        "DATABASE_POOL_TIMEOUT": "2",
        "DBOPS_BREAKER_FAILURE_THRESHOLD": "3",
        "DBOPS_BREAKER_PROBE_INTERVAL": "1",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "4",
    }
    return production_environ(tmp_path / "static", **{**settings, **extra})


@pytest.mark.smoke  # also on the second Django target
@pytest.mark.system
def test_breaker__real_outage_gives_fast_503s_then_heals_with_no_500(tmp_path, pg_cluster):
    with gunicorn(breaker_environ(tmp_path)) as base, Traffic(base + "/bench/select-one") as traffic:
        traffic.wait_for(lambda r: r[1] == 200, timeout=10)
        time.sleep(0.5)
        pg_cluster.stop(mode="immediate")
        stopped_at = time.monotonic()
        opened_at = traffic.wait_for(lambda r: r[3] == "open" and r[0] > stopped_at, timeout=30)
        time.sleep(1.5)  # a stretch of breaker answers
        # Taken before the start: on a busy machine this thread may run again only after requests already succeed.
        restarting_at = time.monotonic()
        pg_cluster.start()  # returns once the server accepts connections
        started_at = time.monotonic()
        first_ok = traffic.wait_for(lambda r: r[1] == 200 and r[0] > started_at, timeout=15)
        time.sleep(1.5)
        records = list(traffic.records)

    statuses = {r[1] for r in records}
    assert statuses <= {200, 503}, f"unexpected statuses {statuses - {200, 503}}: never a 500"
    breaker_answers = [r for r in records if r[3] in ("open", "half_open") and opened_at - 1 < r[0] < restarting_at]
    assert len(breaker_answers) >= 20  # answered by the breaker itself, never after waiting for the pool
    assert all(r[1] == 503 for r in records if stopped_at + 0.2 < r[0] and r[0] + r[2] < restarting_at)
    assert all(r[1] == 200 for r in records if r[0] > first_ok + 0.5)


def test_breaker__application_errors_never_trip_it():
    client = Client(raise_request_exception=False)

    with override_settings(ROOT_URLCONF="bench.urls"):
        statuses = [client.get("/bench/integrity-error").status_code for _ in range(100)]
    assert statuses == [500] * 100
    assert get_breaker().current(force=True).state == State.CLOSED


@pytest.mark.system
def test_breaker__a_connection_failure_before_the_breaker_opens_is_a_503(pg_cluster):
    client = Client(raise_request_exception=False)

    pg_cluster.stop(mode="immediate")
    connection.close()
    connection.close_pool()
    with override_settings(ROOT_URLCONF="bench.urls"), reconfigured_pool(pool={"timeout": 0.5}):
        response = client.get("/bench/select-one", HTTP_ACCEPT="application/json")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response["X-Dbops-Breaker"] == "failure"
    assert response.json() == {"error": "database unavailable", "retry_after": 1}


def real_error(sql: str, **connect) -> BaseException:
    s = connection.settings_dict
    params = {"host": s["HOST"], "port": s["PORT"], "user": s["USER"], "password": s["PASSWORD"], "dbname": s["NAME"]}
    params.update(connect)
    try:
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute(sql)
    except psycopg.Error as exc:
        return exc
    raise AssertionError("no error")


@pytest.mark.system
def test_is_database_outage__classifies_real_errors(pg_cluster, hold_connections):
    assert not is_database_outage(real_error("SELECT 1/0"))  # DataError
    assert not is_database_outage(real_error("SELEKT 1"))  # ProgrammingError
    assert not is_database_outage(real_error("CREATE TEMP TABLE t (id int primary key); INSERT INTO t VALUES (1), (1)"))
    timeout = real_error("SET statement_timeout = 50; SELECT pg_sleep(1)")
    assert not is_database_outage(timeout)
    assert is_database_outage(timeout, count_statement_timeouts=True)

    with (
        reconfigured_pool(pool={"min_size": 1, "max_size": 1, "timeout": 0.2}),
        hold_connections(1),
        pytest.raises(OperationalError) as pool_timeout,
    ):
        connection.ensure_connection()
    assert is_database_outage(pool_timeout.value)  # Django's wrapper around psycopg_pool.PoolTimeout

    pg_cluster.stop(mode="immediate")
    assert is_database_outage(real_error("SELECT 1", connect_timeout=2))  # connection refused


def make_breaker(store=None, probe=lambda: False, **config) -> CircuitBreaker:
    return CircuitBreaker(BreakerConfig(**{"failure_threshold": 3, **config}), store or LocalStateStore(), probe=probe)


def test_breaker__opens_after_threshold_and_answers_with_retry_after():
    breaker = make_breaker(probe_interval=5)
    error = OperationalError("down")
    for _ in range(2):
        decision = breaker.before_request()
        breaker.record_failure(decision, error)
    assert breaker.current(force=True).state == State.CLOSED
    breaker.record_failure(breaker.before_request(), error)
    decision = breaker.before_request()
    assert (decision.allow, decision.state) == (False, State.OPEN)
    assert 4 <= decision.retry_after <= 5


def test_breaker__a_success_resets_the_consecutive_count():
    breaker = make_breaker()
    error = OperationalError("down")
    for _ in range(10):
        breaker.record_failure(breaker.before_request(), error)
        breaker.record_failure(breaker.before_request(), error)
        breaker.record_success(breaker.before_request())
    assert breaker.current(force=True).state == State.CLOSED


def test_breaker__half_open_lets_exactly_one_trial_decide():
    breaker = make_breaker()
    breaker._transition(State.HALF_OPEN, "test")
    trial = breaker.before_request()
    other = breaker.before_request()
    assert (trial.allow, trial.trial) == (True, True)
    assert (other.allow, other.state) == (False, State.HALF_OPEN)
    breaker.record_failure(trial, OperationalError("still down"))
    assert breaker.current(force=True).state == State.OPEN

    breaker._transition(State.HALF_OPEN, "test")
    trial = breaker.before_request()
    breaker.record_success(trial)
    assert breaker.current(force=True).state == State.CLOSED


def test_breaker__probe_success_goes_half_open_with_a_fresh_pool():
    breaker = make_breaker(probe=lambda: True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.close()
    old_pool = connection.pool
    breaker._transition(State.OPEN, "test")
    deadline = time.monotonic() + 5
    while breaker.current(force=True).state == State.OPEN and time.monotonic() < deadline:
        time.sleep(0.05)
    assert breaker.current(force=True).state == State.HALF_OPEN
    assert connection.pool is not old_pool


def test_breaker__reset_timeout_bounds_the_open_state():
    breaker = make_breaker(reset_timeout=1, probe_interval=10)
    breaker._transition(State.OPEN, "test")
    assert breaker.before_request().allow is False
    time.sleep(1.1)
    decision = breaker.before_request()
    assert (decision.allow, decision.trial) == (True, True)


def test_breaker__transitions_are_logged_once_signalled_and_exported(caplog):
    from prometheus_client import REGISTRY

    seen = []

    def receiver(sender, old, new, reason, **kwargs):
        seen.append((old, new))

    breaker_transition.connect(receiver)
    try:
        breaker = make_breaker()
        with caplog.at_level(logging.WARNING, logger="dbops.breaker"):
            breaker._transition(State.OPEN, "test")
    finally:
        breaker_transition.disconnect(receiver)
    assert seen == [(State.CLOSED, State.OPEN)]
    assert sum(getattr(r, "event", "") == "breaker_transition" for r in caplog.records) == 1
    assert REGISTRY.get_sample_value("dbops_breaker_state", {"state": "open"}) == 1


def test_breaker__shared_store_down_falls_back_to_process_local(settings, caplog):
    from dbops.localdb import free_port

    settings.CACHES = {
        **settings.CACHES,
        "dead": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        },
    }
    breaker = make_breaker(store=FallbackStore(CacheStateStore("dead")))
    with caplog.at_level(logging.WARNING, logger="dbops.breaker"):
        for _ in range(3):
            breaker.record_failure(breaker.before_request(), OperationalError("down"))
        decision = breaker.before_request()
    assert (decision.allow, decision.state) == (False, State.OPEN)
    assert sum("breaker_store_unavailable" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.system
def test_breaker__two_servers_sharing_redis_see_the_same_outage(tmp_path, pg_cluster, redis_server):
    env = breaker_environ(tmp_path, CACHE_URL=redis_server)
    with gunicorn(env) as first, gunicorn(env) as second:
        assert http_get(first + "/bench/select-one")[0] == 200
        assert http_get(second + "/bench/select-one")[0] == 200
        pg_cluster.stop(mode="immediate")
        deadline = time.monotonic() + 30
        while True:
            status, _ = http_get(first + "/bench/select-one", timeout=15)
            assert status == 503
            headers = _headers(first + "/bench/select-one")
            if headers.get("X-Dbops-Breaker") == "open":
                break
            assert time.monotonic() < deadline
        time.sleep(breaker_module.SYNC_INTERVAL)
        headers = _headers(second + "/bench/select-one")
        assert headers.get("X-Dbops-Breaker") == "open"  # the second server never touched its pool
        pg_cluster.start()
        deadline = time.monotonic() + 10
        while http_get(second + "/bench/select-one")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def _headers(url: str) -> dict[str, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=15) as response:  # noqa: S310 - loopback
            return dict(response.headers)
    except urllib.error.HTTPError as exc:
        return dict(exc.headers)


def test_breaker__async_views_work_through_the_middleware(settings):
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    settings.ROOT_URLCONF = "bench.urls"
    response = async_to_sync(AsyncClient().get)("/bench/async-select-one")
    assert (response.status_code, response.content) == (200, b"1")


def test_breaker_command__status_and_reset(capsys):
    import json

    from django.core.management import call_command

    get_breaker()._transition(State.OPEN, "test")
    with pytest.raises(SystemExit) as exit_info:
        call_command("breaker", "status", "--json")
    assert exit_info.value.code == 1
    assert json.loads(capsys.readouterr().out)["state"] == "open"
    call_command("breaker", "reset")
    assert capsys.readouterr().out.strip() == "circuit breaker closed"


urlpatterns = [path("ops/", include("dbops.urls"))]


def test_breaker_middleware__exempts_dbops_urls_wherever_the_site_mounts_them():
    from dbops.breaker.middleware import default_exempt_paths

    with override_settings(ROOT_URLCONF=__name__):
        assert default_exempt_paths() == ("/ops/health/", "/ops/metrics", "/static/")


def test_breaker__a_request_that_never_reaches_the_database_neither_resets_nor_closes_it(settings, client):
    """Only the database's word counts: 404s between failures leave the count alone; a query that worked resets it."""
    settings.ROOT_URLCONF = "bench.urls"
    breaker = get_breaker()
    failure = OperationalError("connection refused")
    threshold = breaker.config.failure_threshold
    for _ in range(threshold - 1):
        breaker.record_failure(breaker.before_request(), failure)
        assert client.get("/no-such-page").status_code == 404  # reached no database
    breaker.record_failure(breaker.before_request(), failure)
    assert breaker.current(force=True).state == State.OPEN

    breaker.reset()
    for _ in range(threshold - 1):
        breaker.record_failure(breaker.before_request(), failure)
    assert client.get("/bench/select-one").status_code == 200  # the database answered: the count starts again
    breaker.record_failure(breaker.before_request(), failure)
    assert breaker.current(force=True).state == State.CLOSED


@pytest.mark.system
def test_breaker__opens_under_mixed_traffic_where_most_requests_never_reach_the_database(
    tmp_path, pg_cluster, redis_server
):
    env = breaker_environ(tmp_path, CACHE_URL=redis_server, WEB_CONCURRENCY="2")
    with gunicorn(env) as base:
        assert http_get(base + "/bench/select-one")[0] == 200
        pg_cluster.stop(mode="immediate")
        deadline = time.monotonic() + 30
        while _headers(base + "/bench/select-one").get("X-Dbops-Breaker") != "open":
            assert time.monotonic() < deadline, "DB-free requests kept the breaker closed"
            # 404 while the breaker is closed; once it opened (any moment now) it answers these too.
            assert http_get(base + "/favicon.ico")[0] in (404, 503)
            assert http_get(base + "/no-such-page")[0] in (404, 503)
        pg_cluster.start()

"""A thread keeps its pooled connection between requests, and gives it back whenever someone else needs it.

Each "request" runs on a thread of its own, between the `close_old_connections()` calls Django makes when a
request starts and ends, against the real pool and cluster.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import close_old_connections, connections
from django.db.backends.signals import connection_created

from dbops.database import parking
from dbops.database.pool import pool_stats, replace_idle_pool
from tests.conftest import reconfigured_pool, test_database_connection

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]

WAIT = 30  # seconds a step may take on a loaded machine before the test gives up


class RequestThread:
    """A server thread: it serves each request it is given as Django does, then waits for the next."""

    def __init__(self) -> None:
        self.requests: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self.answers: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while (request := self.requests.get()) is not None:
            close_old_connections()  # request_started
            try:
                answer = ("ok", request())
            except Exception as exc:
                answer = ("error", exc)
            finally:
                close_old_connections()  # request_finished
            self.answers.put(answer)
        connections.close_all()

    def serve(self, request: Callable[[], Any]) -> Any:
        self.requests.put(request)
        outcome, value = self.answers.get(timeout=WAIT)
        if outcome == "error":
            raise value
        return value

    def stop(self) -> None:
        self.requests.put(None)
        self.thread.join(timeout=WAIT)


@pytest.fixture
def request_threads():
    started: list[RequestThread] = []

    def start(count: int = 1) -> list[RequestThread]:
        threads = [RequestThread() for _ in range(count)]
        started.extend(threads)
        return threads

    yield start
    for thread in started:
        thread.stop()


def backend_pid() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_parking__a_thread_keeps_its_connection_between_requests(request_threads, monkeypatch):
    monkeypatch.setattr(parking, "PARK_SECONDS", 60)  # nothing returns it during the test but the test itself
    created: list[int] = []

    def count(sender, connection, **kwargs):
        created.append(1)

    connection_created.connect(count)
    try:
        with reconfigured_pool(pool={"min_size": 1, "max_size": 4}):
            (server,) = request_threads(1)
            pids = [server.serve(backend_pid) for _ in range(3)]
            between = pool_stats("default")
    finally:
        connection_created.disconnect(count)

    assert len(set(pids)) == 1  # one server session served all three requests
    assert len(created) == 1  # checked out once: no per-request set-up after the first
    assert between["parked"] == 1
    assert between["in_use"] == 0  # parked is not in use


def test_parking__an_unused_connection_goes_back_to_the_pool(request_threads, monkeypatch):
    monkeypatch.setattr(parking, "PARK_SECONDS", 0.2)
    with reconfigured_pool(pool={"min_size": 1, "max_size": 4}):
        (server,) = request_threads(1)
        server.serve(backend_pid)
        parked = pool_stats("default")["parked"]
        returned = eventually(lambda: pool_stats("default")["parked"] == 0)  # the attendant thread's work
        stats = pool_stats("default")
        answered_after = server.serve(backend_pid)  # the thread checks out again

    assert parked == 1
    assert returned
    assert stats["pool_available"] >= 1
    assert answered_after > 0


def test_parking__a_thread_that_finds_the_pool_empty_takes_a_parked_connection(request_threads, monkeypatch):
    monkeypatch.setattr(parking, "PARK_SECONDS", 60)
    # One connection for two threads, and a pool timeout far shorter than the parking: only taking the parked
    # connection back lets the second thread's request succeed.
    with reconfigured_pool(pool={"min_size": 1, "max_size": 1, "timeout": 2}):
        first, second = request_threads(2)
        first_pid = first.serve(backend_pid)
        second_pid = second.serve(backend_pid)
        first_again = first.serve(backend_pid)
        stats = pool_stats("default")

    assert first_pid == second_pid == first_again  # the same single server session, passed from thread to thread
    assert stats.get("requests_errors", 0) == 0  # nobody timed out waiting
    assert stats["pool_size"] == 1


def test_parking__a_parked_connection_that_died_is_replaced_before_the_query(request_threads, monkeypatch):
    monkeypatch.setattr(parking, "PARK_SECONDS", 60)
    with reconfigured_pool(pool={"min_size": 1, "max_size": 2}):
        (server,) = request_threads(1)
        parked_pid = server.serve(backend_pid)
        with test_database_connection() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [parked_pid])
        assert eventually(lambda: not _session_exists(parked_pid))
        next_pid = server.serve(backend_pid)

    assert next_pid != parked_pid


def test_parking__a_pool_refresh_takes_parked_connections_back_first(request_threads, monkeypatch):
    monkeypatch.setattr(parking, "PARK_SECONDS", 60)
    with reconfigured_pool(pool={"min_size": 1, "max_size": 4}):
        servers = request_threads(3)
        for server in servers:
            server.serve(backend_pid)
        old_pool = connections["default"].pool
        parked = pool_stats("default")["parked"]
        replaced = replace_idle_pool("default")  # refused while connections are checked out
        answers = [server.serve(backend_pid) for server in servers]

    assert parked == 3
    assert replaced
    assert old_pool.closed
    assert all(pid > 0 for pid in answers)


def test_parking__a_connection_goes_back_at_the_end_of_its_lease(request_threads, monkeypatch):
    monkeypatch.setattr(parking, "LEASE_SECONDS", 0)
    with reconfigured_pool(pool={"min_size": 1, "max_size": 4}):
        (server,) = request_threads(1)
        server.serve(backend_pid)
        stats = pool_stats("default")

    assert stats["parked"] == 0
    assert stats["in_use"] == 0


def test_parking__a_request_that_failed_or_left_a_transaction_open_returns_its_connection(request_threads):
    def failing_query():
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT * FROM dbops_no_such_table")

    def open_transaction():
        connections["default"].set_autocommit(False)
        backend_pid()

    with reconfigured_pool(pool={"min_size": 1, "max_size": 4}):
        (server,) = request_threads(1)
        with pytest.raises(Exception, match="dbops_no_such_table"):
            server.serve(failing_query)
        after_failure = pool_stats("default")
        server.serve(open_transaction)
        after_transaction = pool_stats("default")

    assert (after_failure["parked"], after_failure["in_use"]) == (0, 0)
    assert (after_transaction["parked"], after_transaction["in_use"]) == (0, 0)


def _session_exists(pid: int) -> bool:
    with test_database_connection() as conn:
        return bool(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0])


def test_parking__a_wrapper_this_thread_left_behind_gives_its_connection_back(monkeypatch):
    monkeypatch.setattr(parking, "PARK_SECONDS", 60)
    with reconfigured_pool(pool={"min_size": 1, "max_size": 4}) as current:
        # Under ASGI each request gets a DatabaseWrapper of its own on the same thread.
        earlier = connections.create_connection("default")
        earlier.ensure_connection()
        earlier.close_if_unusable_or_obsolete()
        parked_before = pool_stats("default")["parked"]
        current.ensure_connection()  # the next request's first query
        stats = pool_stats("default")

    assert parked_before == 1
    assert earlier.connection is None
    assert (stats["parked"], stats["in_use"]) == (0, 1)


def test_parking__closing_the_pool_closes_parked_connections_too(request_threads, monkeypatch):
    monkeypatch.setattr(parking, "PARK_SECONDS", 60)
    with reconfigured_pool(pool={"min_size": 1, "max_size": 4}):
        (server,) = request_threads(1)
        parked_pid = server.serve(backend_pid)
    # reconfigured_pool closed the pool on the way out (as a test database's teardown does before dropping it)

    assert eventually(lambda: not _session_exists(parked_pid))

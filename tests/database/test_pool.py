"""Django's native pool against the real cluster: it is used, bounded, times out, and applies the query timeout."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import OperationalError, connection
from psycopg_pool import ConnectionPool

from dbops.conf import from_env
from dbops.database.pool import pool_stats
from tests import PROJECT_DIR
from tests.conftest import reconfigured_pool, server_connections

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def test_pool__django_uses_the_native_psycopg_pool():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('application_name'), current_setting('statement_timeout')")
        application_name, statement_timeout = cursor.fetchone()
    assert isinstance(connection.pool, ConnectionPool)
    assert application_name == "dbops"
    assert statement_timeout == "30s"


def test_pool__stats_change_under_concurrent_checkouts(hold_connections):
    with reconfigured_pool(pool={"min_size": 1, "max_size": 4}):
        before = pool_stats("default")
        with hold_connections(3):
            during = pool_stats("default")
        after = pool_stats("default")

    assert during["requests_num"] >= before.get("requests_num", 0) + 3
    assert during["in_use"] == 3
    assert during["pool_size"] >= 3
    assert after["in_use"] == 0
    assert after["pool_available"] >= 3


def test_pool__server_never_sees_more_than_max_size(hold_connections):
    seen = []
    with reconfigured_pool(pool={"min_size": 1, "max_size": 3, "timeout": 10}):
        with hold_connections(3):
            # Six more threads queue for the three busy connections.
            waiters = [threading.Thread(target=_one_query) for _ in range(6)]
            for thread in waiters:
                thread.start()
            deadline = time.monotonic() + 30  # however slow this machine, all six get to queue
            while pool_stats("default")["requests_waiting"] < 6 and time.monotonic() < deadline:
                time.sleep(0.02)
            seen.append(server_connections())
            seen.append(pool_stats("default")["requests_waiting"])
        for thread in waiters:
            thread.join(timeout=30)
        seen.append(server_connections())

    assert seen[0] == 3
    assert seen[1] == 6
    assert seen[2] <= 3


def _one_query() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def test_pool__checkout_beyond_max_waits_the_pool_timeout_then_fails(hold_connections):
    with reconfigured_pool(pool={"min_size": 1, "max_size": 2, "timeout": 1.5}):
        with hold_connections(2):
            started = time.monotonic()
            with pytest.raises(OperationalError, match="couldn't get a connection after 1.50 sec"):
                connection.ensure_connection()
            waited = time.monotonic() - started
        stats = pool_stats("default")

    assert waited >= 1.4
    assert stats["requests_errors"] >= 1


def test_pool__query_timeout_cancels_a_longer_statement():
    short = from_env(
        {"DJANGO_ENV": "test", "DATABASE_URL": "postgres://x@h/db", "DATABASE_QUERY_TIMEOUT": "1"}, base_dir=PROJECT_DIR
    )
    options = short.database.django_settings()["OPTIONS"]["options"]
    with reconfigured_pool(options=options):
        with pytest.raises(OperationalError, match="statement timeout"), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(3)")
        # The connection survives the cancel and goes back to the pool usable.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)


def test_pool__a_checkout_reuses_the_pool_without_rebuilding_connection_settings(monkeypatch):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.close()
    pool = connection.pool
    from django.db.backends.postgresql.base import DatabaseWrapper as DjangoWrapper

    built = []
    original = DjangoWrapper.get_connection_params

    def counting(self):
        built.append(self.alias)
        return original(self)

    monkeypatch.setattr(DjangoWrapper, "get_connection_params", counting)
    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert connection.connection.autocommit is True
        connection.close()
    assert connection.pool is pool
    assert built == []  # the pool connects with the parameters it was made with
    assert connection.get_connection_params()["dbname"] == connection.settings_dict["NAME"]  # callers still get them


def test_pool__a_transaction_still_turns_autocommit_off_and_back_on():
    from django.db import transaction

    with transaction.atomic():
        assert connection.connection.autocommit is False
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    assert connection.connection.autocommit is True
    connection.close()


def test_a_checkout_after_failed_connects_revives_the_pool_with_the_real_parameters(monkeypatch):
    """revive() asks the server directly from inside a checkout: it must connect with the site's parameters.

    A checkout skips building them for the pool (which has its own); the direct probe once got that empty
    dictionary too, so a worker whose pool had failed answered 503 until the pool's own reconnect succeeded.
    """
    from dbops.database.recovery import evidence

    # Without its parameters libpq falls back to its defaults: make them lead nowhere (this machine runs another
    # PostgreSQL on the default socket, which answered such a probe in the suite's place).
    monkeypatch.setenv("PGHOST", "/nonexistent")
    connection.close()
    evidence("default").failed()  # what a failed reconnect (or a dead connection found at checkout) records
    try:
        with connection.cursor() as cursor:  # the checkout revives the pool: the server answers
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
        assert evidence("default").failed_at is None
    finally:
        evidence("default").connected()


def test_a_checkout_waiting_in_a_pool_that_is_replaced_takes_the_new_pool(monkeypatch):
    """The reviver replaces a pool with no connection checked out, but a checkout may be waiting in its queue.

    The waiter used to fail with PoolClosed (a 503 for the first requests of a burst after an outage); it must
    take its connection from the replacement, even while the old pool is still closing.
    """
    from django.db import connections

    from dbops.database.pool import replace_idle_pool

    slow = {"left": 1}
    real_connect = psycopg.Connection.connect.__func__

    def slow_connect(cls, *args, **kwargs):
        if slow["left"]:
            slow["left"] -= 1
            time.sleep(1.5)  # the old pool's first connection is still being made when the waiter asks
        return real_connect(cls, *args, **kwargs)

    with reconfigured_pool(pool={"min_size": 0, "max_size": 1, "timeout": 10}):
        monkeypatch.setattr(psycopg.Connection, "connect", classmethod(slow_connect))
        outcome: dict[str, object] = {}

        def waiter() -> None:
            try:
                with connections["default"].cursor() as cursor:
                    cursor.execute("SELECT 1")
                    outcome["row"] = cursor.fetchone()
            except Exception as exc:  # noqa: BLE001 - the test reports what the waiter got
                outcome["error"] = exc
            finally:
                connections["default"].close()

        thread = threading.Thread(target=waiter)
        thread.start()
        deadline = time.monotonic() + 5
        while not pool_stats("default").get("requests_waiting") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pool_stats("default").get("requests_waiting") == 1, "the waiter never queued in the pool"
        assert replace_idle_pool("default")  # nothing checked out: the old pool is closed under the waiter
        thread.join(timeout=15)
    assert outcome == {"row": (1,)}, outcome

"""High availability on real clusters: failover through a multi-host URL, the replica router, PgBouncer."""

from __future__ import annotations

import copy
import dataclasses
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from dbops.database.server import server_status
from dbops.health.replica import ReplicaLag
from dbops.localdb import throwaway_cluster, throwaway_standby
from dbops.replication import router as replicas
from tests.parts.servers import Traffic, server_environ
from tests.parts.site import gunicorn
from tests.parts.waiting import sql, wait_for
from tests.pg_cluster_plugin import owned_cluster

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
MAX_LAG_MS = 300


@pytest.fixture
def replica(transactional_db, settings):
    """Yield a real streaming standby of the test cluster as the "replica" alias, with the router on."""
    cluster = owned_cluster()
    if cluster is None:
        pytest.skip("TEST_DATABASE_URL points at a server this run does not own: cannot build a standby of it")
    with throwaway_standby(cluster) as standby:
        replica_settings = copy.deepcopy(connections["default"].settings_dict)
        replica_settings["PORT"] = str(standby.port)
        replica_settings["OPTIONS"]["pool"] = {**replica_settings["OPTIONS"]["pool"], "name": "dbops-replica"}
        # Created, then unregistered: Django's test case allows queries to connections it did not know about
        # (this thread's wrapper stays), and a replica in DATABASES would need a test database of its own.
        connections.settings["replica"] = replica_settings
        connections["replica"]  # noqa: B018 - creates this thread's wrapper
        del connections.settings["replica"]
        settings.DATABASE_ROUTERS = ["dbops.replication.router.ReplicaRouter"]
        settings.DBOPS = dataclasses.replace(
            settings.DBOPS, replica=settings.DBOPS.database, replica_max_lag_ms=MAX_LAG_MS
        )
        replicas._lag_cache.update(value=None, at=float("-inf"))
        try:
            yield standby
        finally:
            connections["replica"].close()
            connections["replica"].close_pool()
            delattr(connections._connections, "replica")


def caught_up() -> bool:
    return replicas.replica_lag_ms(force=True) == 0


def test_router__fresh_replica_serves_reads_and_a_write_keeps_the_request_on_the_primary(replica):
    users = get_user_model()
    users.objects.create(username="before")
    query = "SELECT count(*) FROM auth_user WHERE username = 'before'"
    wait_for(lambda: sql(replica, query, dbname=connection.settings_dict["NAME"]) == [(1,)])
    wait_for(caught_up)
    token = replicas.start_request()
    try:
        with CaptureQueriesContext(connections["replica"]) as on_replica:
            assert users.objects.filter(username="before").exists()
        assert len(on_replica) == 1  # served by the standby
        users.objects.create(username="mine")  # a write in this request ...
        with CaptureQueriesContext(connections["replica"]) as on_replica:
            assert users.objects.filter(username="mine").exists()  # ... is read back at once, from the primary
        assert len(on_replica) == 0
    finally:
        replicas.end_request(token)
    token = replicas.start_request()  # the next request starts on the replica again
    assert replicas.read_alias() == ("replica", "fresh")
    replicas.end_request(token)


def test_router__a_lagging_replica_sends_reads_to_the_primary_until_it_catches_up(replica):
    users = get_user_model()
    wait_for(caught_up)
    sql(replica, "SELECT pg_wal_replay_pause()")
    users.objects.create(username="during-pause")
    lag = wait_for(lambda: (value := replicas.replica_lag_ms(force=True)) and value > MAX_LAG_MS and value)
    assert lag > MAX_LAG_MS
    token = replicas.start_request()  # a request that has written nothing
    try:
        assert replicas.read_alias() == ("default", "replica_lagging")
        with CaptureQueriesContext(connections["replica"]) as on_replica:
            assert users.objects.filter(username="during-pause").exists()  # correct, from the primary
        assert len(on_replica) == 0
    finally:
        replicas.end_request(token)
    with pytest.raises(Exception, match="over 300 ms"):
        ReplicaLag().run()
    sql(replica, "SELECT pg_wal_replay_resume()")
    wait_for(caught_up)
    token = replicas.start_request()
    assert replicas.read_alias() == ("replica", "fresh")
    replicas.end_request(token)
    ReplicaLag().run()  # healthy again


def failover_environ(primary, standby, **extra):
    url = (
        f"postgres://postgres:{primary.password}@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
        "?target_session_attrs=read-write"
    )
    return server_environ(
        url,
        DJANGO_ROOT_URLCONF="bench.urls",
        DATABASE_POOL_TIMEOUT="2",
        DATABASE_CONNECT_TIMEOUT="2",
        DBOPS_BREAKER_FAILURE_THRESHOLD="3",
        DBOPS_BREAKER_PROBE_INTERVAL="1",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4",
        DATABASE_BACKUP_ENABLED="false",
        **extra,
    )


def test_failover__synchronous_standby_promoted_keeps_every_acknowledged_write_and_never_500s(tmp_path):
    with throwaway_cluster() as primary, throwaway_standby(primary) as standby:
        sql(primary, "ALTER SYSTEM SET synchronous_standby_names = '*'")
        sql(primary, "ALTER SYSTEM SET synchronous_commit = 'on'")  # the throwaway cluster turns it off
        sql(primary, "SELECT pg_reload_conf()")
        wait_for(lambda: sql(primary, "SELECT sync_state FROM pg_stat_replication") == [("sync",)])
        sql(primary, "CREATE TABLE bench_writes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz)")
        environ = failover_environ(primary, standby, DJANGO_STATIC_ROOT=str(tmp_path / "static"))
        with gunicorn(environ, ready_path="/health/live") as base, Traffic(base + "/bench/write") as traffic:
            traffic.wait_for(lambda r: r[1] == 200, timeout=15)
            time.sleep(1.0)
            primary.stop(mode="immediate")
            died_at = time.monotonic()
            time.sleep(3.0)  # the gap: no primary at all, longer than the 2 s pool timeout a request may wait
            standby.promote()
            promoted_at = time.monotonic()
            first_write = traffic.wait_for(lambda r: r[1] == 200 and r[0] > promoted_at, timeout=20)
            time.sleep(1.0)
            records = list(traffic.records)
        statuses = {r[1] for r in records}
        assert statuses <= {200, 503}, f"never a 500 (or a dropped connection): {statuses}"
        assert any(r[1] == 503 for r in records if r[0] > died_at), "the gap was answered with 503s"
        assert first_write - promoted_at < 10
        acknowledged = {int(r[4]) for r in records if r[1] == 200}
        present = {row[0] for row in sql(standby, "SELECT id FROM bench_writes")}
        assert acknowledged <= present, f"lost acknowledged writes: {sorted(acknowledged - present)[:10]}"
        assert sql(standby, "SELECT pg_is_in_recovery()") == [(False,)]


def test_health__shows_which_host_is_the_primary(settings):
    with throwaway_cluster() as primary, throwaway_standby(primary) as standby:
        settings_dict = copy.deepcopy(connections["default"].settings_dict)
        hosts = {"HOST": "127.0.0.1,127.0.0.1", "PORT": f"{primary.port},{standby.port}"}
        settings_dict.update(hosts, NAME="postgres", PASSWORD=primary.password)
        settings_dict["OPTIONS"].pop("pool")
        settings_dict["OPTIONS"]["target_session_attrs"] = "read-write"
        connections.settings["failover"] = settings_dict
        try:
            status = server_status("failover", thresholds=settings.DBOPS.health, timeout=2)
            assert status.address == f"127.0.0.1:{primary.port}" and not status.in_recovery
            primary.stop(mode="immediate")
            standby.promote()
            status = server_status("failover", thresholds=settings.DBOPS.health, timeout=3)
            assert status.address == f"127.0.0.1:{standby.port}" and not status.in_recovery
        finally:
            connections["failover"].close()
            del connections.settings["failover"]


def test_router__a_write_through_a_raw_cursor_keeps_the_request_on_the_primary(replica):
    from django.db import connection
    from django.db.backends.signals import connection_created

    from dbops.replication.router import WriteMarker, attach_write_marker

    # The app connects the marker when DATABASE_REPLICA_URL is set at start-up; this test sets the replica later.
    connection_created.connect(attach_write_marker, dispatch_uid="dbops.replica_write_marker")
    connection.ensure_connection()
    attach_write_marker(sender=None, connection=connection)
    users = get_user_model()
    wait_for(caught_up)
    token = replicas.start_request()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM auth_user")  # a read: the request may still use the replica
        assert replicas.read_alias() == ("replica", "fresh")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO auth_user (username, password, is_superuser, is_staff, is_active, first_name, "
                "last_name, email, date_joined) VALUES ('raw', '', false, false, true, '', '', '', now())"
            )
        with CaptureQueriesContext(connections["replica"]) as on_replica:
            assert users.objects.filter(username="raw").exists()  # read back at once, from the primary
        assert len(on_replica) == 0
    finally:
        replicas.end_request(token)
        connection_created.disconnect(dispatch_uid="dbops.replica_write_marker")
        connection.execute_wrappers[:] = [w for w in connection.execute_wrappers if not isinstance(w, WriteMarker)]

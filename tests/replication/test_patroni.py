"""Automatic failover on a real Patroni 4 cluster (etcd, three PostgreSQL 15 nodes, synchronous mode).

The site runs under gunicorn with the multi-host DATABASE_URL (`target_session_attrs=read-write`) while a client
writes through it. Node loss (the leader's postmaster and Patroni killed), a planned switchover and a frozen
leader (SIGSTOP): the site answers only 200 or 503, Patroni promotes, writes resume, and every write the site
acknowledged is on the new leader.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.parts import patroni
from tests.parts.servers import Traffic, gunicorn, server_environ
from tests.parts.waiting import wait_for
from tests.tiers import require_tool

pytestmark = pytest.mark.system

QUERY_TIMEOUT_S = 2
CLIENT_GRACE_S = 2


@pytest.fixture
def cluster():
    reason = patroni.available()
    require_tool("Patroni and etcd", how=reason or "", found=not reason)
    with patroni.cluster(3, synchronous=True) as group:
        with psycopg.connect(group.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                "CREATE TABLE bench_writes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz)"
            )
        yield group


def site_environ(cluster, tmp_path, **extra: str) -> dict[str, str]:
    return server_environ(
        cluster.url(),
        DJANGO_ROOT_URLCONF="bench.urls",
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        # Above the connect timeout: a new connection may first spend it on a frozen host before libpq tries the next.
        DATABASE_POOL_TIMEOUT="5",
        DATABASE_CONNECT_TIMEOUT="2",
        DATABASE_QUERY_TIMEOUT=str(QUERY_TIMEOUT_S),
        DATABASE_CLIENT_GRACE_SECONDS=str(CLIENT_GRACE_S),
        DBOPS_BREAKER_FAILURE_THRESHOLD="3",
        DBOPS_BREAKER_PROBE_INTERVAL="1",
        DBOPS_PATRONI_URLS=cluster.api_urls,
        DATABASE_BACKUP_ENABLED="false",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="4",
        **extra,
    )


def written_on(cluster, node) -> set[int]:
    with psycopg.connect(cluster.node_url(node), autocommit=True, connect_timeout=5) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM bench_writes")}


def new_leader(cluster, old):
    leader = cluster.leader()
    return leader if leader is not None and leader.name != old.name else None


def assert_no_loss(records, cluster, leader) -> None:
    statuses = {r[1] for r in records}
    assert statuses <= {200, 503}, f"only 200 and 503, never a 500 or a dropped request: {statuses}"
    acknowledged = {int(r[4]) for r in records if r[1] == 200}
    present = written_on(cluster, leader)
    assert acknowledged <= present, f"lost acknowledged writes: {sorted(acknowledged - present)[:10]}"


def test_node_loss__patroni_promotes_writes_resume_and_no_acknowledged_write_is_lost(cluster, tmp_path):
    with gunicorn(site_environ(cluster, tmp_path)) as base, Traffic(base + "/bench/write") as traffic:
        traffic.wait_for(lambda r: r[1] == 200, timeout=30)
        old = cluster.leader()
        cluster.kill(old)
        died = time.monotonic()
        leader = wait_for(lambda: new_leader(cluster, old), timeout=patroni.TTL * 3)
        promoted = time.monotonic()
        resumed = traffic.wait_for(lambda r: r[1] == 200 and r[0] > promoted, timeout=60)
        time.sleep(1.0)
        records = list(traffic.records)
    assert_no_loss(records, cluster, leader)
    assert any(r[1] == 200 for r in records if r[0] > resumed - 0.5)
    print(f"node loss: promoted {promoted - died:.1f} s after the kill, writes back {resumed - died:.1f} s after it")


def test_switchover__the_site_answers_503_at_most_while_it_switches_and_keeps_every_write(cluster, tmp_path):
    with gunicorn(site_environ(cluster, tmp_path)) as base, Traffic(base + "/bench/write") as traffic:
        traffic.wait_for(lambda r: r[1] == 200, timeout=30)
        old = cluster.leader()
        candidate = next(m for m in cluster.members() if m["role"] == "sync_standby")
        started = time.monotonic()
        cluster.switchover(next(n for n in cluster.nodes if n.name == candidate["name"]))
        leader = wait_for(lambda: new_leader(cluster, old), timeout=60)
        switched = time.monotonic()
        traffic.wait_for(lambda r: r[1] == 200 and r[0] > switched, timeout=60)
        time.sleep(1.0)
        records = list(traffic.records)
    assert leader.name == candidate["name"]
    assert_no_loss(records, cluster, leader)
    unavailable = [r[0] for r in records if r[1] == 503 and r[0] >= started]
    window = (max(unavailable) - min(unavailable)) if unavailable else 0.0
    print(f"switchover: 503s for {window:.2f} s ({len(unavailable)} requests)")


def test_frozen_leader__no_request_hangs_past_the_bound_and_nothing_is_lost_after_it_wakes(cluster, tmp_path):
    # Documented bound: a statement the server does not answer is cut after DATABASE_QUERY_TIMEOUT +
    # DATABASE_CLIENT_GRACE_SECONDS; connecting to a frozen host gives up after DATABASE_CONNECT_TIMEOUT per host.
    bound = QUERY_TIMEOUT_S + CLIENT_GRACE_S + 2 * 2 + 5  # + a pool checkout (DATABASE_POOL_TIMEOUT)
    with gunicorn(site_environ(cluster, tmp_path)) as base, Traffic(base + "/bench/write") as traffic:
        traffic.wait_for(lambda r: r[1] == 200, timeout=30)
        old = cluster.leader()
        cluster.freeze(old)
        frozen = time.monotonic()
        try:
            leader = wait_for(lambda: new_leader(cluster, old), timeout=patroni.TTL * 4)
            promoted = time.monotonic()
            traffic.wait_for(lambda r: r[1] == 200 and r[0] > promoted, timeout=90)
        finally:
            cluster.freeze(old, frozen=False)
        woke = time.monotonic()
        cluster.wait_healthy(timeout=120)  # the old leader rejoins as a replica (Patroni 4 demotes it)
        time.sleep(1.0)
        records = list(traffic.records)
    assert cluster.leader().name == leader.name
    assert_no_loss(records, cluster, leader)
    during = [r for r in records if frozen <= r[0] <= woke]
    assert during and max(r[2] for r in during) < bound * 2, "a request hung past the client-side bound"
    print(f"frozen leader: longest request {max(r[2] for r in during):.1f} s (bound {bound} s)")


def test_health__shows_the_cluster_as_patroni_does_and_warns_when_no_sync_standby_is_left(cluster, settings):
    import dataclasses

    from health_check.exceptions import ServiceUnavailable, ServiceWarning

    from dbops.health.patroni import PatroniCluster
    from dbops.replication.patroni import cluster_view

    settings.DBOPS = dataclasses.replace(settings.DBOPS, patroni_urls=tuple(cluster.api_urls.split(",")))
    view = cluster_view()
    leader = cluster.leader()
    assert (view["leader"], view["leader_confirmed"], view["synchronous_mode"]) == (leader.name, True, True)
    assert len(view["members"]) == 3 and len(view["sync_standbys"]) == 1
    PatroniCluster().run()  # healthy: no exception

    for node in cluster.nodes:
        if node.name != leader.name:
            cluster.kill(node)

    def warns() -> str:
        try:
            PatroniCluster().run()
        except ServiceWarning as exc:
            return str(exc)
        return ""

    message = wait_for(lambda: "no synchronous standby" in warns() and warns(), timeout=60)
    assert "synchronous mode is on but no synchronous standby is confirmed" in message

    settings.DBOPS = dataclasses.replace(settings.DBOPS, patroni_urls=("http://127.0.0.1:9",))
    with pytest.raises(ServiceUnavailable, match="no Patroni REST API answers"):
        PatroniCluster().run()


def test_cluster_helper__leaves_no_process_or_folder_behind_after_a_failing_test():

    reason = patroni.available()
    require_tool("Patroni and etcd", how=reason or "", found=not reason)
    with pytest.raises(RuntimeError, match="a test failed here"), patroni.cluster(2, synchronous=False) as group:
        root = group.root
        pids = [group.etcd.pid, *(n.process.pid for n in group.nodes), *map(group.postmaster_pid, group.nodes)]
        raise RuntimeError("a test failed here")
    assert not root.exists()

    def running(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().split(") ")[1][0] != "Z"
        except FileNotFoundError:
            return False

    wait_for(lambda: not any(running(pid) for pid in pids if pid), timeout=30)

"""Failover and read scaling on real clusters (issue: high availability).

failover      a primary with a synchronous standby behind gunicorn (the Dockerfile's command, multi-host
              DATABASE_URL with target_session_attrs=read-write, breaker on); writes through /bench/write; the
              primary is killed (pg_ctl stop -m immediate), the standby promoted 1 s later. Measured: time from the
              primary's death and from the promotion to the first successful write, 500s (target 0), lost
              acknowledged writes (target 0).
patroni       a 3-node Patroni 4 cluster (etcd, synchronous mode; tests/parts/patroni.py) behind the same site:
              node loss (the leader's postmaster and Patroni SIGKILLed) and a planned switchover. Measured: the
              leader's death to Patroni's promotion and to the first successful write, 500s (target 0), lost
              acknowledged writes (target 0), and how long a switchover answers 503.
read scaling  /bench/read (one routed ORM read) through a server with DATABASE_REPLICA_URL vs one without, on the
              same primary + asynchronous standby, interleaved wrk rounds: ratio replica/primary-only.
Run: .venv/bin/python bench/failover.py [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import os
import tempfile
import time

import psycopg
from harness import median, parser, server_environ

from dbops.localdb import throwaway_cluster, throwaway_standby
from tests.parts.servers import Traffic, gunicorn, interleaved


def sql(cluster, statement: str, dbname: str = "postgres"):
    with psycopg.connect(cluster.url(dbname), autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else None


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("condition not reached in time")
        time.sleep(0.1)


def environ(url: str, **extra: str) -> dict[str, str]:
    return server_environ(
        url,
        DJANGO_ROOT_URLCONF="bench.urls",
        DJANGO_STATIC_ROOT=tempfile.mkdtemp(prefix="dbops-static-"),
        DATABASE_POOL_TIMEOUT="2",
        DATABASE_CONNECT_TIMEOUT="2",
        DBOPS_BREAKER_FAILURE_THRESHOLD="3",
        DBOPS_BREAKER_PROBE_INTERVAL="1",
        DATABASE_BACKUP_ENABLED="false",
        **extra,
    )


def failover_round() -> dict:
    with throwaway_cluster() as primary, throwaway_standby(primary) as standby:
        sql(primary, "ALTER SYSTEM SET synchronous_standby_names = '*'")
        sql(primary, "ALTER SYSTEM SET synchronous_commit = 'on'")
        sql(primary, "SELECT pg_reload_conf()")
        wait_for(lambda: sql(primary, "SELECT sync_state FROM pg_stat_replication") == [("sync",)])
        sql(primary, "CREATE TABLE bench_writes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz)")
        url = (
            f"postgres://postgres:{primary.password}@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
            "?target_session_attrs=read-write"
        )
        with gunicorn(environ(url)) as base, Traffic(base + "/bench/write") as traffic:
            traffic.wait_for(lambda r: r[1] == 200, timeout=15)
            time.sleep(1.0)
            primary.stop(mode="immediate")
            died = time.monotonic()
            time.sleep(1.0)
            standby.promote()
            promoted = time.monotonic()
            first = traffic.wait_for(lambda r: r[1] == 200 and r[0] > promoted, timeout=30)
            time.sleep(0.5)
            records = list(traffic.records)
        acknowledged = {int(r[4]) for r in records if r[1] == 200}
        present = {row[0] for row in sql(standby, "SELECT id FROM bench_writes")}
        return {
            "from_death_s": first - died,
            "from_promotion_s": first - promoted,
            "http_500": sum(1 for r in records if r[1] == 500),
            "other_errors": sum(1 for r in records if r[1] not in (200, 503, 500)),
            "answered_503": sum(1 for r in records if r[1] == 503),
            "lost_writes": len(acknowledged - present),
            "writes": len(acknowledged),
        }


def patroni_round() -> dict:
    from tests.parts import patroni

    with patroni.cluster(3, synchronous=True) as cluster:
        sql_url = cluster.url()
        with psycopg.connect(sql_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                "CREATE TABLE bench_writes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz)"
            )
        with gunicorn(environ(sql_url, WEB_CONCURRENCY="2")) as base, Traffic(base + "/bench/write") as traffic:
            traffic.wait_for(lambda r: r[1] == 200, timeout=30)
            time.sleep(1.0)
            old = cluster.leader()
            cluster.kill(old)
            died = time.monotonic()
            wait_for(lambda: (cluster.leader() or old).name != old.name, timeout=120)
            promoted = time.monotonic()
            first = traffic.wait_for(lambda r: r[1] == 200 and r[0] > promoted, timeout=60)
            cluster.start_node(old)  # it rejoins as a replica
            leader = cluster.wait_healthy(timeout=120)
            candidate = next(n for n in cluster.nodes if n.name != leader.name and n.name != old.name)
            switch_started = time.monotonic()
            cluster.switchover(candidate)
            wait_for(lambda: (cluster.leader() or leader).name == candidate.name, timeout=120)
            switched = time.monotonic()
            traffic.wait_for(lambda r: r[1] == 200 and r[0] > switched, timeout=60)
            time.sleep(0.5)
            records = list(traffic.records)
        acknowledged = {int(r[4]) for r in records if r[1] == 200}
        with psycopg.connect(cluster.node_url(candidate), autocommit=True, connect_timeout=5) as conn:
            present = {row[0] for row in conn.execute("SELECT id FROM bench_writes")}
        switch_503 = [r[0] for r in records if r[1] == 503 and r[0] >= switch_started]
        return {
            "promotion_s": promoted - died,
            "first_write_s": first - died,
            "after_promotion_s": first - promoted,
            "switchover_503_s": (max(switch_503) - min(switch_503)) if switch_503 else 0.0,
            "http_500": sum(1 for r in records if r[1] == 500),
            "other_errors": sum(1 for r in records if r[1] not in (200, 503, 500)),
            "lost_writes": len(acknowledged - present),
            "writes": len(acknowledged),
        }


def read_scaling(rounds: int, seconds: float) -> dict[str, list[float]]:
    with throwaway_cluster() as primary:
        primary.ensure_database("bench")
        os.environ.update(DJANGO_ENV="test", DATABASE_URL=primary.url("bench"))
        from harness import setup_django

        setup_django()  # migrate the primary; the standby copies it
        with (
            throwaway_standby(primary) as standby,
            gunicorn(environ(primary.url("bench"))) as alone,
            gunicorn(environ(primary.url("bench"), DATABASE_REPLICA_URL=standby.url("bench"))) as replica,
        ):
            bases = {"primary only": alone, "with replica": replica}
            rps, _errors, _tool = interleaved(bases, "/bench/read", rounds=rounds, seconds=seconds)
    return rps


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seconds", type=float, default=5, help="Load per condition per round (read scaling).")
    args = p.parse_args()
    rounds = 1 if args.smoke else min(args.rounds, 3)
    results = [failover_round() for _ in range(rounds)]
    print(f"failover: {rounds} round(s), synchronous standby, promotion 1 s after the primary's death")
    for key in ("from_death_s", "from_promotion_s"):
        print(f"  first write after {key[5:-2]:<10} median {median([r[key] for r in results]):.2f} s")
    for key in ("http_500", "other_errors", "lost_writes", "answered_503", "writes"):
        print(f"  {key:<13} total {sum(r[key] for r in results)}")
    from tests.parts import patroni

    if args.smoke:
        print("patroni: left out of the smoke run (tests/replication/test_patroni.py runs the same faults)")
    elif patroni.available():
        print(f"patroni: left out ({patroni.available()})")
    else:
        runs = [patroni_round() for _ in range(rounds)]
        print(f"patroni: {rounds} round(s), 3 nodes, synchronous mode, ttl {patroni.TTL} s; medians")
        for key in ("promotion_s", "first_write_s", "after_promotion_s", "switchover_503_s"):
            print(f"  {key:<18} median {median([r[key] for r in runs]):.2f} s  rounds: "
                  + " ".join(f"{r[key]:.2f}" for r in runs))  # fmt: skip
        for key in ("http_500", "other_errors", "lost_writes", "writes"):
            print(f"  {key:<18} total {sum(r[key] for r in runs)}")
    read_rounds, seconds = (1, 1) if args.smoke else (args.rounds, args.seconds)
    rps = read_scaling(read_rounds, seconds)
    ratios = [with_r / alone for with_r, alone in zip(rps["with replica"], rps["primary only"], strict=True)]
    print(f"read scaling: {read_rounds} interleaved round(s) x {seconds:g} s on /bench/read")
    for name, values in rps.items():
        print(f"  {name:<13} median {median(values):8.1f} req/s  rounds: {' '.join(f'{v:.0f}' for v in values)}")
    print(f"  ratio with replica / primary only {median(ratios):.2f}x (median of paired rounds)")


if __name__ == "__main__":
    main()

"""Database insights vs check_postgres and postgres_exporter: which planted problems each finds, and the time.

A database with N bulk tables (5,000 by default, 3 indexes each: 15,000 indexes) on a throwaway cluster, and one
of each problem planted: a failed CREATE UNIQUE INDEX CONCURRENTLY (INVALID), an index identical to another, a
serial at 2,000,000,000, a foreign key without an index on 20,000 rows, a big index no query scanned, 40,000 dead
rows, an inactive replication slot; the transaction ID age and cache hit ratio thresholds lowered so they are
crossed (the same for every tool). Timed in interleaved rounds: `run_insights()` (every check, in process), the
matching check_postgres actions (one process each, as Nagios runs them), one postgres_exporter scrape (default
collectors plus its packaged example queries). Printed: per problem, which tool finds it.
Target (issue #31): the whole insight run under 2 s at 5,000 tables.
Run: .venv/bin/python bench/insights.py [--rounds 3] [--tables 5000]
(check_postgres and postgres_exporter come from `make system-deps`.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

from harness import PROJECT_DIR, median, parser, postgres, setup_django
from psycopg import connect

from dbops.localdb import free_port
from tests.parts.servers import wait_for_port

EXPORTER = PROJECT_DIR / "var" / "tools" / "postgres_exporter"
QUERIES = PROJECT_DIR / "var" / "tools" / "postgres_exporter_queries.yaml"
SLOT = "bench_insights_slot"
# problem -> (dbops code, dbops object, check_postgres action and its options)
PROBLEMS = {
    "transaction ID age": (
        "I001",
        "database bench_insights",
        ("txn_wraparound", "--warning=1", "--critical=1999999999"),
    ),
    "serial near its maximum": ("I002", "sequence public.planted_serial_id_seq", ("sequence",)),
    "INVALID index": ("I003", "index public.planted_invalid_v", None),
    "duplicate index": ("I004", "index public.planted_child_dup", None),
    "unused index": ("I005", "index public.planted_child_note", None),
    "foreign key without index": ("I006", "constraint planted_child_parent_id_fkey", None),
    "dead rows": ("I007", "table public.planted_dead", ("bloat", "--warning=1", "--critical=1000 GB")),
    "inactive replication slot": ("I008", f"slot {SLOT}", ("replication_slots", "--warning=0", "--critical=1 GB")),
    "cache hit ratio": ("I010", "database bench_insights", ("hitratio", "--warning=100%", "--critical=0%")),
    # A top statement (pg_stat_statements) that scans planted_orders for one customer: hypopg proves the index.
    "index a top statement needs": ("I011", "index on public.planted_orders (customer)", None),
}
TOP_STATEMENT = "SELECT count(*) FROM planted_orders WHERE customer = %s"


def plant(url: str, tables: int) -> None:
    with connect(url, autocommit=True) as conn:
        for start in range(1, tables + 1, 250):  # a transaction per batch: 15,000 relations exhaust the lock table
            stop = min(start + 249, tables)
            conn.execute(
                f"""
                DO $$ BEGIN FOR i IN {start}..{stop} LOOP
                  EXECUTE format('CREATE TABLE bulk_%s (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                  a int, b int)', i);
                  EXECUTE format('CREATE INDEX ON bulk_%s (a)', i);
                  EXECUTE format('CREATE INDEX ON bulk_%s (b, a)', i);
                END LOOP; END $$
                """
            )
        conn.execute("CREATE TABLE planted_parent (id int PRIMARY KEY)")
        conn.execute("INSERT INTO planted_parent SELECT generate_series(1, 100)")
        conn.execute(
            "CREATE TABLE planted_child (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "parent_id int REFERENCES planted_parent, note text)"
        )
        conn.execute(
            "INSERT INTO planted_child (parent_id, note) SELECT 1 + mod(g, 100), md5(g::text) "
            "FROM generate_series(1, 20000) g"
        )
        conn.execute("CREATE INDEX planted_child_note ON planted_child (note)")
        conn.execute("CREATE INDEX planted_child_note_copy ON planted_child (note)")
        conn.execute("ALTER INDEX planted_child_note_copy RENAME TO planted_child_dup")
        conn.execute("CREATE TABLE planted_invalid (v int)")
        conn.execute("INSERT INTO planted_invalid VALUES (1), (1)")
        with contextlib.suppress(Exception):  # failing is the point: it leaves the index INVALID
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY planted_invalid_v ON planted_invalid (v)")
        conn.execute("CREATE TABLE planted_serial (id serial PRIMARY KEY)")
        conn.execute("SELECT setval('planted_serial_id_seq', 2000000000)")
        conn.execute("CREATE TABLE planted_dead (v int)")
        conn.execute("INSERT INTO planted_dead SELECT generate_series(1, 50000)")
        conn.execute("DELETE FROM planted_dead WHERE v > 10000")
        conn.execute("CREATE TABLE planted_orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer int)")
        conn.execute("INSERT INTO planted_orders (customer) SELECT mod(g, 5000) FROM generate_series(1, 50000) g")
        conn.execute("ANALYZE planted_parent, planted_child, planted_dead, planted_orders")
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE EXTENSION hypopg")

        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", [SLOT])


def workload(url: str) -> None:
    """Run the site's statements after a statistics reset (the planting and the other tools' queries are not it)."""
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        for customer in range(20):
            conn.execute(TOP_STATEMENT, [customer])


def check_postgres(url: str, action: tuple[str, ...]) -> tuple[float, str]:
    """Run one check_postgres action; return (seconds, its status word: OK, WARNING, CRITICAL, UNKNOWN)."""
    parts = urllib.parse.urlsplit(url)
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - Debian's check_postgres, fixed arguments
        [
            shutil.which("check_postgres") or "check_postgres",
            f"--action={action[0]}",
            *action[1:],
            f"--dbhost={parts.hostname}",
            f"--dbport={parts.port}",
            f"--dbuser={parts.username}",
            f"--dbname={parts.path.lstrip('/')}",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PGPASSWORD": parts.password or ""},
    )
    status = re.search(r"\b(OK|WARNING|CRITICAL|UNKNOWN)\b", done.stdout)
    return time.perf_counter() - started, status.group(1) if status else "UNKNOWN"


@contextlib.contextmanager
def database(server_url: str, name: str):
    """Yield the URL of a new database `name` on the benchmark's server (the test database stays untouched)."""
    with connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with connect(server_url, autocommit=True) as conn:
            # The slot is the cluster's, not the database's: never leave it holding WAL.
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                         [SLOT])  # fmt: skip
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclasses.dataclass
class Exporter:
    """postgres_exporter on a free port; `scrape()` returns its metrics text."""

    url: str
    process: subprocess.Popen | None = None
    port: int = 0

    def __enter__(self) -> Exporter:
        self.port = free_port()
        env = {**os.environ, "DATA_SOURCE_NAME": self.url + "?sslmode=disable"}
        self.process = subprocess.Popen(  # noqa: S603 - the exporter from make system-deps
            [str(EXPORTER), f"--web.listen-address=127.0.0.1:{self.port}", f"--extend.query-path={QUERIES}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)
        return self

    def scrape(self) -> tuple[float, str]:
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=60) as answer:  # noqa: S310
            text = answer.read().decode()
        return time.perf_counter() - started, text

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)


def exporter_finds(metrics: str) -> set[str]:
    """Return the planted problems an alert on the exporter's series could see (a series naming or measuring one)."""
    found = set()
    values = {}
    for line in metrics.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
    dead = [v for k, v in values.items() if k.startswith("pg_stat_user_tables_n_dead_tup") and "planted_dead" in k]
    if dead and dead[0] >= 1000:
        found.add("dead rows")
    hit = sum(
        v for k, v in values.items() if k.startswith("pg_stat_database_blks_hit") and 'datname="bench_insights"' in k
    )
    read = sum(
        v for k, v in values.items() if k.startswith("pg_stat_database_blks_read") and 'datname="bench_insights"' in k
    )
    if hit + read and hit / (hit + read) < 1.0:
        found.add("cache hit ratio")
    for problem, needle in (
        ("index a top statement needs", "planted_orders_customer"),  # no series proposes an index
        ("inactive replication slot", SLOT),
        ("transaction ID age", "wraparound"),
        ("serial near its maximum", "planted_serial_id_seq"),
        ("INVALID index", "planted_invalid_v"),
        ("duplicate index", "planted_child_dup"),
        ("unused index", "planted_child_note"),
        ("foreign key without index", "planted_child_parent_id_fkey"),
    ):
        if any(needle in name for name in values):  # series only: HELP lines mention wraparound in prose
            found.add(problem)
    return found


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--tables", type=int, default=5000, help="Bulk tables (3 indexes each).")
    args = p.parse_args()
    rounds, tables = (1, 100) if args.smoke else (args.rounds if args.rounds != 8 else 3, args.tables)
    with postgres() as server_url, database(server_url, "bench_insights") as url:
        os.environ["DATABASE_URL"] = url  # Django (run_insights) reads the planted database
        started = time.perf_counter()
        plant(url, tables)
        planting = time.perf_counter() - started
        setup_django(migrate=False)
        from dbops.conf import get_config
        from dbops.insights.service import run_insights

        limits = dataclasses.replace(
            get_config().insights, xid_age_warn=1, unused_index_days=0, unused_index_min_kb=100,
            foreign_key_min_rows=1000, dead_tuples_min=1000, cache_hit_ratio=1.0, cache_min_blocks=0,
        )  # fmt: skip
        timings: dict[str, list[float]] = {}
        ours: set[str] = set()
        theirs: dict[str, str] = {}
        scraped: set[str] = set()
        with Exporter(url) as exporter:
            for _ in range(rounds):
                workload(url)
                report = run_insights(limits=limits)
                timings.setdefault("dbops (every check)", []).append(report.seconds)
                found = {(i.code, i.object) for i in report.insights}
                ours = {problem for problem, (code, obj, _) in PROBLEMS.items() if (code, obj) in found}
                total = 0.0
                for problem, (_, _, action) in PROBLEMS.items():
                    if action is not None:
                        seconds, status = check_postgres(url, action)
                        total += seconds
                        theirs[problem] = status
                timings.setdefault("check_postgres (its actions)", []).append(total)
                seconds, metrics = exporter.scrape()
                timings.setdefault("postgres_exporter scrape", []).append(seconds)
                scraped = exporter_finds(metrics)
        with connect(url, autocommit=True) as conn:
            indexes = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'").fetchone()[0]

    print(f"insights: {tables} bulk tables, {indexes} indexes (planted in {planting:.0f} s), {rounds} round(s)")
    for name, values in timings.items():
        print(f"  {name:<30} median {median(values):7.3f} s")
    print(f"  {'problem':<27} {'dbops':<6} {'check_postgres':<22} postgres_exporter")
    for problem, (code, _obj, action) in PROBLEMS.items():
        cp = f"{action[0]}: {theirs[problem]}" if action else "no action"
        print(f"  {problem:<27} {code if problem in ours else 'MISSED':<6} {cp:<22} "
              f"{'a series shows it' if problem in scraped else 'no series'}")  # fmt: skip
    dbops_time = median(timings["dbops (every check)"])
    print(f"time ratio check_postgres/dbops: {median(timings['check_postgres (its actions)']) / dbops_time:.1f}x; "
          f"found: dbops {len(ours)}/{len(PROBLEMS)}, check_postgres "
          f"{sum(1 for s in theirs.values() if s in ('WARNING', 'CRITICAL'))}/{len(PROBLEMS)}, "
          f"postgres_exporter {len(scraped)}/{len(PROBLEMS)}")  # fmt: skip


if __name__ == "__main__":
    main()

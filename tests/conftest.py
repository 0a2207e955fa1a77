"""Shared fixtures. Every database test runs against the real throwaway cluster and Django's real pool."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
import time

import psycopg
import pytest
from django.db import connection, connections
from psycopg import sql

from tests.logcheck import JsonLinesCheck
from tests.parts.servers import wait_for_port
from tests.pg_cluster_plugin import owned_cluster
from tests.tiers import add_tier_option, check_tiers, forbid_processes, require_tool, select_tiers, tier_of

LAB = "migration_lab"
LOCK_TIMEOUT_MS = 300
SECRET_PASSWORD = "S3cretPw"  # noqa: S105 - the marker tests look for in every output


def pytest_addoption(parser):
    add_tier_option(parser)


def pytest_collection_modifyitems(config, items):
    check_tiers(items)
    select_tiers(config, items)


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    """Each test keeps backups in its own folder (never the project's var/backups); the path is returned."""
    folder = tmp_path / "backups"
    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_dir=folder)
    settings.STORAGES = {**settings.STORAGES, "dbbackup": settings.DBOPS.backup_storage()}
    return folder


@pytest.fixture(autouse=True)
def tier_guard(request, monkeypatch):
    """Refuse a process in a pure or database test (tests/tiers.py)."""
    tier = tier_of(request.node)
    if tier in ("pure", "database"):
        forbid_processes(monkeypatch, tier)


@pytest.fixture(autouse=True)
def dbops_logs_json_lines():
    """Fail a test during which dbops logged a line that is not one JSON object."""
    import logging

    logger = logging.getLogger("dbops")
    check = JsonLinesCheck(logger)
    logger.addHandler(check)
    yield
    logger.removeHandler(check)
    assert not check.bad, f"dbops logged lines that are not JSON: {check.bad[:3]}"


@pytest.fixture(autouse=True)
def closed_breaker():
    """Leave the process' circuit breaker closed for the next test, whatever this one did to it."""
    yield
    from dbops.breaker.state import State, get_breaker

    breaker = get_breaker()
    if breaker.current(force=True).state != State.CLOSED:
        breaker.reset()
    breaker.store.reset_failures()


@pytest.fixture(autouse=True)
def no_shared_insights():
    """Forget the shared insight report: one test's planted problems are not the next one's health."""
    yield
    from django.core.cache import caches

    from dbops.conf import get_config
    from dbops.insights.shared import REPORT_KEY

    with contextlib.suppress(Exception):  # a test that replaced the cache settings may leave nothing to reach
        caches[get_config().breaker.cache_alias].delete(REPORT_KEY.format(alias="default"))


@pytest.fixture
def redis_server():
    """Yield the URL of a throwaway redis-server on a free loopback port."""
    import shutil
    import subprocess

    from dbops.localdb import free_port

    require_tool("redis-server", how="make test installs it with apt-get")
    binary = shutil.which("redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_server():
    """Yield a running S3-compatible server (moto) with no bucket yet; stop it afterwards."""
    yield from _s3_server(tls=False)


@pytest.fixture
def s3_tls_server():
    """Yield moto's S3 server speaking https (self-signed), as pgBackRest requires; no bucket yet."""
    yield from _s3_server(tls=True)


def _s3_server(*, tls: bool):
    from tests.parts.servers import S3Server, s3_server_available

    require_tool(
        "moto_server" + (" and stunnel4" if tls else ""),
        how="requirements-dev.txt; make test installs stunnel4",
        found=s3_server_available(tls=tls),
    )
    server = S3Server(tls=tls)
    yield server
    server.stop()


@pytest.fixture
def pg_cluster():
    """Yield the cluster this test run owns, for tests that stop or restart the server."""
    cluster = owned_cluster()
    if cluster is None:
        pytest.skip("TEST_DATABASE_URL points at a server this run does not own: fault tests cannot stop it")
    yield cluster
    if not cluster.is_running():
        cluster.start()
    connection.close()
    connection.close_pool()
    # A worker that saw the server down answers "down" for up to PROBE_INTERVAL after it is back (the probe is
    # rate-limited): wait for this process to see it back, as its next request would, before the flush connects.
    from dbops.database.recovery import PoolHealth, revive

    deadline = time.monotonic() + 10
    while revive("default") is PoolHealth.DOWN and time.monotonic() < deadline:
        time.sleep(0.05)


@contextlib.contextmanager
def reconfigured_pool(alias: str = "default", **options):
    """Recreate the real pool of `alias` with other psycopg_pool/connection options; restore it afterwards."""
    conn = connections[alias]
    saved = copy.deepcopy(conn.settings_dict["OPTIONS"])
    pool_options = options.pop("pool", {})
    conn.close()
    conn.close_pool()
    conn.settings_dict["OPTIONS"]["pool"] = {**saved.get("pool", {}), **pool_options}
    conn.settings_dict["OPTIONS"].update(options)
    try:
        yield conn
    finally:
        conn.close()
        conn.close_pool()
        conn.settings_dict["OPTIONS"].clear()
        conn.settings_dict["OPTIONS"].update(saved)


class ConnectionHolders:
    """Threads that each check a real connection out of the pool and hold it until released."""

    def __init__(self, count: int, alias: str = "default") -> None:
        self.alias = alias
        self.release = threading.Event()
        self.ready = threading.Barrier(count + 1, timeout=30)
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._hold, daemon=True) for _ in range(count)]

    def _hold(self) -> None:
        conn = connections[self.alias]
        try:
            conn.ensure_connection()
        except BaseException as exc:
            self.errors.append(exc)
        try:
            self.ready.wait()
            self.release.wait(timeout=60)
        finally:
            conn.close()

    def __enter__(self) -> ConnectionHolders:
        for thread in self.threads:
            thread.start()
        self.ready.wait()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        for thread in self.threads:
            thread.join(timeout=30)


@pytest.fixture
def hold_connections():
    return ConnectionHolders


def test_database_connection(*, dbname: str | None = None, autocommit: bool = True) -> psycopg.Connection:
    """Open a plain psycopg connection (outside Django and its pool) to the test database or `dbname`."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=dbname or settings["NAME"],
        autocommit=autocommit,
    )


test_database_connection.__test__ = False  # a helper, not a test


def server_connections(application_name: str = "dbops") -> int:
    """Count the connections the server sees from this application to the test database."""
    settings = connection.settings_dict
    with test_database_connection(dbname="postgres") as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = %s",
            [application_name, settings["NAME"]],
        ).fetchone()[0]


@pytest.fixture
def lab(settings):
    """Install the lab app with one scenario's migrations and quick guards; drop what it created afterwards."""
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS,
        migrations=dataclasses.replace(
            settings.DBOPS.migrations,
            lock_timeout_ms=LOCK_TIMEOUT_MS,
            lock_retries=1,
            lock_retry_delay_ms=100,
            backup=False,
        ),
    )

    def use(scenario: str) -> None:
        settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "tests.migration_lab.apps.MigrationLabConfig"]
        settings.MIGRATION_MODULES = {LAB: f"tests.migration_lab.scenarios.{scenario}"}

    yield use
    connection.close()
    with test_database_connection() as conn:
        for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'migration\\_lab\\_%%'"):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table)))
        conn.execute("DELETE FROM django_migrations WHERE app = %s", [LAB])

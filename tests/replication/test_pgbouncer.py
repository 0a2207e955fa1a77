"""PgBouncer in transaction mode in front of the test cluster: dbops' core paths work through it."""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core import checks
from django.db import connection, connections, transaction

from dbops.conf import from_env
from dbops.database.server import server_status
from dbops.health.database import DatabaseLatency
from dbops.health.pgbouncer import PgBouncerPools
from dbops.localdb import free_port
from dbops.replication.pgbouncer import pgbouncer_report
from tests import PROJECT_DIR
from tests.conftest import test_database_connection
from tests.parts.servers import wait_for_port
from tests.parts.waiting import wait_for
from tests.tiers import require_tool

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pgbouncer():
    """Run pgbouncer (transaction pooling, 2 server connections) as the postgres user; yield its port."""
    require_tool("pgbouncer", how="make test installs Debian's pgbouncer")
    binary = shutil.which("pgbouncer")
    folder = Path(tempfile.mkdtemp(prefix="dbops-pgbouncer-"))
    port = free_port()
    settings_dict = connection.settings_dict
    # Clients are trusted; PgBouncer logs in to the server with the cluster's password (scram-sha-256).
    (folder / "users.txt").write_text(f'"postgres" "{connection.settings_dict["PASSWORD"]}"\n')
    server = f"host=127.0.0.1 port={settings_dict['PORT']} dbname={settings_dict['NAME']}"
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{settings_dict["NAME"]} = {server}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 2
ignore_startup_parameters = extra_float_digits
logfile = {folder}/pgbouncer.log
"""
    )
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        for name in ("users.txt", "pgbouncer.ini"):
            shutil.chown(folder / name, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    yield port
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def bouncer_alias(pgbouncer):
    """Yield a "bouncer" alias built by dbops' own settings code with DATABASE_PGBOUNCER_MODE=transaction."""
    s = connection.settings_dict
    config = from_env(
        {
            "DATABASE_URL": f"postgres://{s['USER']}@127.0.0.1:{pgbouncer}/{s['NAME']}",
            "DATABASE_PGBOUNCER_MODE": "transaction",
            "DATABASE_POOL_SIZE": "2",
            "DATABASE_POOL_MAX_OVERFLOW": "2",
        },
        base_dir=PROJECT_DIR,
    )
    settings_dict = {**copy.deepcopy(s), **config.database.django_settings("bouncer")}
    connections.settings["bouncer"] = settings_dict
    connections["bouncer"]  # noqa: B018 - this thread's wrapper; unregistered so the test case allows it
    del connections.settings["bouncer"]
    yield "bouncer"
    connections["bouncer"].close()
    connections["bouncer"].close_pool()
    delattr(connections._connections, "bouncer")


def test_core_paths_work_through_pgbouncer_in_transaction_mode(bouncer_alias, settings):
    users = get_user_model().objects.using(bouncer_alias)
    with transaction.atomic(using=bouncer_alias):
        users.create(username="through-bouncer")
        users.filter(username="through-bouncer").update(first_name="B")
    for _ in range(10):  # psycopg would prepare this after 5 runs; with PgBouncer that must stay off
        assert users.filter(username="through-bouncer").count() == 1
    assert [u.first_name for u in users.filter(username="through-bouncer").iterator()] == ["B"]
    DatabaseLatency(alias=bouncer_alias).run()
    assert server_status(bouncer_alias, thresholds=settings.DBOPS.health, timeout=2).connections >= 1
    users.filter(username="through-bouncer").delete()


def test_pgbouncer_health_reads_show_pools(pgbouncer, bouncer_alias, settings):
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS, pgbouncer_admin_url=f"postgres://postgres@127.0.0.1:{pgbouncer}/pgbouncer"
    )
    get_user_model().objects.using(bouncer_alias).count()
    report = pgbouncer_report()
    assert report["clients_waiting"] == 0 and any(
        p["database"] == connection.settings_dict["NAME"] for p in report["pools"]
    )
    PgBouncerPools().run()
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS, pgbouncer_admin_url=f"postgres://postgres@127.0.0.1:{free_port()}/x"
    )
    with pytest.raises(Exception, match="unreachable"):
        PgBouncerPools().run()


@pytest.mark.database
def test_system_check_flags_server_side_cursors_left_on_behind_pgbouncer(settings):
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS, database=dataclasses.replace(settings.DBOPS.database, pgbouncer_mode="transaction")
    )
    live = connection.settings_dict
    saved = live.get("DISABLE_SERVER_SIDE_CURSORS", False)
    live["DISABLE_SERVER_SIDE_CURSORS"] = False
    try:
        ids = {message.id for message in checks.run_checks() if message.id and message.id.startswith("dbops.E00")}
    finally:
        live["DISABLE_SERVER_SIDE_CURSORS"] = saved
    # The test settings carry the statement_timeout startup option and prepared statements too.
    assert {"dbops.E003", "dbops.E004", "dbops.E005"} <= ids


def test_system_check__a_role_without_statement_timeout_behind_pgbouncer_is_warned_about(
    pgbouncer, bouncer_alias, settings
):
    from dbops.checks import W007_ID, check_statement_timeout_behind_pgbouncer

    settings.DBOPS = dataclasses.replace(
        settings.DBOPS, database=dataclasses.replace(settings.DBOPS.database, pgbouncer_mode="transaction")
    )
    role = connection.settings_dict["USER"]
    assert [w.id for w in check_statement_timeout_behind_pgbouncer(databases=[bouncer_alias])] == [W007_ID]
    with test_database_connection() as conn:
        conn.execute(f"ALTER ROLE \"{role}\" SET statement_timeout = '30s'")
    try:
        admin = psycopg.connect(
            host="127.0.0.1", port=pgbouncer, user="postgres", dbname="pgbouncer", autocommit=True,
            cursor_factory=psycopg.ClientCursor, prepare_threshold=None,
        )  # fmt: skip
        with admin:
            admin.execute("RECONNECT")  # server connections start again, with the role's setting
        wait_for(lambda: check_statement_timeout_behind_pgbouncer(databases=[bouncer_alias]) == [], timeout=30)
    finally:
        with test_database_connection() as conn:
            conn.execute(f'ALTER ROLE "{role}" RESET statement_timeout')

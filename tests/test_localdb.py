"""The project-local cluster: created, reused with its data after a stop, and a clear error without binaries."""

from __future__ import annotations

import dataclasses
import json
import os

import psycopg
import pytest
from django.core.management import call_command

from dbops import localdb
from dbops.exceptions import LocalDbError
from dbops.localdb import LocalCluster, find_bindir, free_port

pytestmark = pytest.mark.system


def test_local_cluster__survives_a_restart_with_its_data(tmp_path):
    # As root, pytest's private tmp folder is unreachable for the postgres user: this also covers the fallback.
    cluster = LocalCluster(data_dir=localdb.resolve_data_dir(tmp_path / "pg"), port=free_port(), bindir=find_bindir())
    try:
        cluster.init(durable=False)
        cluster.start()
        assert cluster.ensure_database("dbops") is True
        with psycopg.connect(cluster.url("dbops"), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        cluster.stop()
        assert not cluster.is_running()

        cluster.init(durable=False)  # a second `make run`: nothing is re-created
        cluster.start()
        assert cluster.ensure_database("dbops") is False
        with psycopg.connect(cluster.url("dbops")) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
    finally:
        cluster.destroy()


@pytest.mark.pure
def test_find_bindir__without_server_binaries_says_how_to_install(monkeypatch):
    monkeypatch.setattr(localdb.shutil, "which", lambda name: None)
    monkeypatch.setattr(localdb.glob, "glob", lambda pattern: [])
    with pytest.raises(LocalDbError, match="apt-get install postgresql"):
        find_bindir("/nonexistent/bin")


def test_find_bindir__prefers_pg_bindir():
    real = find_bindir()
    assert find_bindir(str(real)) == real


def test_localdb_command__status_json_of_a_stopped_cluster(settings, tmp_path, capsys):
    import dataclasses

    settings.DBOPS = dataclasses.replace(
        settings.DBOPS,
        localdb=dataclasses.replace(settings.DBOPS.localdb, data_dir=tmp_path / "none", port=free_port()),
    )
    with pytest.raises(SystemExit) as exit_info:
        call_command("localdb", "status", "--json")
    assert exit_info.value.code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["running"] is False
    assert report["url"].endswith("/dbops")


@pytest.fixture
def project_copy(tmp_path):
    """Yield a runner of manage.py in a copy of the reference project, with a clean environment."""
    import os
    import shutil
    import subprocess
    import sys

    from tests import PROJECT_DIR

    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(PROJECT_DIR / "manage.py", site / "manage.py")
    shutil.copytree(PROJECT_DIR / "project", site / "project", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_", "DBOPS_", "ENFORCE_"))}

    def manage(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=site,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    manage.site = site
    return manage


def last_line(result) -> str:
    """Return the command's last output line (Django's shell may first say what it imported)."""
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_reference_project__reads_a_dotenv_file_and_the_environment_wins(project_copy):
    (project_copy.site / ".env").write_text("DBOPS_LOCALDB_PORT=55111\nDATABASE_POOL_SIZE=7\n")
    show = "from django.conf import settings as s; print(s.DBOPS.localdb.port, s.DBOPS.database.pool.size)"

    assert last_line(project_copy("shell", "-c", show)) == "55111 7"
    assert last_line(project_copy("shell", "-c", show, DATABASE_POOL_SIZE="9")) == "55111 9"


def test_localdb_command__a_cluster_on_another_port_is_found_again_without_the_variable(project_copy):
    port = str(free_port())
    started = project_copy("localdb", "start", DBOPS_LOCALDB_PORT=port)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("Created and started the cluster")
        again = project_copy("localdb", "start")
        assert again.stdout.startswith("Already running: the cluster")  # not "Started"
        status = project_copy("localdb", "status", "--json")
        report = json.loads(status.stdout)
        assert (status.returncode, report["running"], report["port"]) == (0, True, int(port))
        url = project_copy("shell", "-c", "from django.conf import settings; print(settings.DBOPS.database.masked_url)")
        assert last_line(url).endswith(f"127.0.0.1:{port}/dbops")
    finally:
        assert project_copy("localdb", "stop").stdout.startswith("Stopped the cluster")
    assert project_copy("localdb", "stop").stdout.startswith("Not running: the cluster")
    assert json.loads(project_copy("localdb", "status", "--json").stdout)["running"] is False


@pytest.mark.pure
def test_localdb_command__start_is_refused_in_strict_environments(settings):
    from django.core.management.base import CommandError

    settings.DBOPS = dataclasses.replace(settings.DBOPS, environment="production")
    with pytest.raises(CommandError, match="development only") as refused:
        call_command("localdb", "start")
    assert refused.value.returncode == 2


def test_local_cluster__refuses_a_connection_without_its_password(tmp_path):
    cluster = LocalCluster(data_dir=localdb.resolve_data_dir(tmp_path / "pg"), port=free_port(), bindir=find_bindir())
    try:
        cluster.init(durable=False)
        cluster.start()
        with psycopg.connect(cluster.url(), connect_timeout=5) as conn:  # scram-sha-256 with the password
            assert conn.execute("SELECT current_setting('password_encryption')").fetchone() == ("scram-sha-256",)
        for wrong in ("", "not-the-password"):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(host="127.0.0.1", port=cluster.port, user="postgres", password=wrong, connect_timeout=5)
        assert cluster.password not in repr(cluster)
    finally:
        cluster.destroy()


def test_localdb_command__a_start_that_fails_on_a_taken_port_keeps_the_password_for_the_next_start(project_copy):
    import socket

    port = free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", port))
    taken.listen()
    try:
        failed = project_copy("localdb", "start", DBOPS_LOCALDB_PORT=str(port))
        assert failed.returncode == 2 and "is the port taken?" in failed.stderr
    finally:
        taken.close()
    try:
        started = project_copy("localdb", "start", DBOPS_LOCALDB_PORT=str(port))
        assert started.returncode == 0, started.stderr  # it logs in with the password the first attempt made
        assert started.stdout.startswith("Started the cluster")
    finally:
        project_copy("localdb", "stop")


def test_manage__a_stopped_local_cluster_is_one_line_and_exit_3(tmp_path):
    """Opted in to the project-local cluster and it is not running: migrate says how to start it, no traceback."""
    from dbops.localdb import free_port
    from tests.parts.site import manage

    for command in (["migrate", "--noinput"], ["createsuperuser", "--noinput"]):
        result = manage(*command, DBOPS_LOCALDB_DIR=str(tmp_path / "pg"), DBOPS_LOCALDB_PORT=str(free_port()))
        assert result.returncode == 3, result.stderr
        assert (
            result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[0]]
            and "manage.py localdb start" in result.stderr
        )


@pytest.mark.pure
def test_temp_folder__a_planted_symlink_is_refused_and_its_target_left_alone(tmp_path, monkeypatch):
    import stat as stat_module
    import tempfile

    from dbops.localdb import LocalCluster, LocalDbError

    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    planted = shared_tmp / "dbops-localdb-0123456789"
    planted.symlink_to(victim)  # another local user got there first
    cluster = LocalCluster(data_dir=planted / "data", port=1, bindir=tmp_path)
    with pytest.raises(LocalDbError, match="not a plain folder"):
        cluster._make_owned_folder(cluster.data_dir)
    assert stat_module.S_IMODE(victim.stat().st_mode) == 0o755 and victim.stat().st_uid == os.getuid()
    assert not (victim / "data").exists()


@pytest.mark.pure
def test_temp_folder__made_private_and_exclusive_when_nobody_planted_anything(tmp_path, monkeypatch):
    import stat as stat_module
    import tempfile

    from dbops.localdb import LocalCluster

    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    cluster = LocalCluster(data_dir=shared_tmp / "dbops-localdb-0123456789" / "data", port=1, bindir=tmp_path)
    cluster._make_owned_folder(cluster.data_dir)
    assert stat_module.S_IMODE(cluster.data_dir.parent.stat().st_mode) == 0o755  # the server's user passes through
    assert stat_module.S_IMODE(cluster.data_dir.stat().st_mode) == 0o700

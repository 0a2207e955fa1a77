"""The project-local cluster: created, reused with its data after a stop, and a clear error without binaries."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.core.management import call_command

from dbops import localdb
from dbops.exceptions import LocalDbError
from dbops.localdb import LocalCluster, find_bindir, free_port


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

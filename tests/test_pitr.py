"""Point-in-time recovery with pgBackRest on real throwaway clusters (as the postgres OS user when root)."""

from __future__ import annotations

import datetime
import os
import pwd
import shutil
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dbops.backups.pitr import PitrRefused, PitrTarget, backup, restore, setup_check, status, verify
from dbops.health.pitr import pitr_findings
from dbops.localdb import LocalCluster, find_bindir, free_port
from dbops.models import PitrRun

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest not installed (make test installs it)"),
]


class PitrCluster:
    """A throwaway cluster with a unix socket (pgBackRest needs one) and a pgBackRest repository beside it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dbops-pitr-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.socket_dir = self.root / "socket"
        self.cluster = LocalCluster(data_dir=self.root / "data", port=free_port(), bindir=find_bindir())
        self.cluster.init(durable=False)
        self.cluster._make_owned_folder(self.socket_dir)
        self.target = PitrTarget(
            stanza="proof",
            repo_path=self.root / "pgbackrest",
            pg_path=self.cluster.data_dir,
            pg_port=self.cluster.port,
            socket_path=str(self.socket_dir),
            pg_user="postgres",
            conninfo={
                "host": "127.0.0.1",
                "port": self.cluster.port,
                "user": "postgres",
                "password": self.cluster.password,
                "dbname": "postgres",
            },
        )
        self.configure(f"unix_socket_directories = '{self.socket_dir}'")

    def configure(self, *lines: str) -> None:
        with (self.cluster.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write("\n".join(lines) + "\n")

    def enable_archiving(self) -> None:
        command = self.target.archive_command().replace("'", "''")
        self.configure("archive_mode = on", f"archive_command = '{command}'", "archive_timeout = 60")

    def sql(self, statement: str, params=None):
        with psycopg.connect(self.cluster.url(), autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else None

    def destroy(self) -> None:
        self.cluster.destroy()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def pitr_cluster():
    cluster = PitrCluster()
    yield cluster
    cluster.destroy()


def test_setup_check__a_cluster_without_archiving_says_exactly_what_is_missing(pitr_cluster):
    pitr_cluster.cluster.start()
    lines = {line.name: line for line in setup_check(pitr_cluster.target, fix=True)}
    assert lines["pgbackrest"].ok and lines["configuration file"].ok and lines["wal_level"].ok
    assert not lines["archive_mode"].ok and lines["archive_mode"].fix == "ALTER SYSTEM SET archive_mode = 'on'; restart"
    assert not lines["archive_command"].ok
    assert not lines["archive_timeout"].ok and "archive_timeout = '60s'" in lines["archive_timeout"].fix
    assert lines["archive_command"].fix == (
        f"ALTER SYSTEM SET archive_command = 'pgbackrest --config={pitr_cluster.target.config_file} "
        "--stanza=proof archive-push %p'; SELECT pg_reload_conf();"
    )
    assert "stanza" not in lines  # not attempted before the server is ready for it


def test_proof__restore_to_a_time_undoes_a_mistake_and_advances_the_timeline(pitr_cluster):
    pitr_cluster.enable_archiving()
    pitr_cluster.cluster.start()
    lines = setup_check(pitr_cluster.target, fix=True)
    assert all(line.ok for line in lines), [line for line in lines if not line.ok]
    pitr_cluster.sql("CREATE TABLE precious (id int PRIMARY KEY)")
    pitr_cluster.sql("INSERT INTO precious VALUES (1)")
    run = backup(pitr_cluster.target, backup_type="full")
    assert run.status == "succeeded" and run.label.endswith("F")
    time.sleep(1.1)  # pgBackRest stop times have one-second resolution
    pitr_cluster.sql("INSERT INTO precious VALUES (2)")
    target_time = pitr_cluster.sql("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    pitr_cluster.sql("DROP TABLE precious")  # the mistake
    pitr_cluster.sql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 30
    while pitr_cluster.sql("SELECT last_archived_time FROM pg_stat_archiver")[0][0] <= target_time:
        assert time.monotonic() < deadline, "WAL was not archived"
        time.sleep(0.2)
    window = status(pitr_cluster.target)
    assert window["earliest_restorable"] <= target_time <= window["latest_restorable"]
    assert verify(pitr_cluster.target).status == "succeeded"
    timeline_before = pitr_cluster.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]

    with pytest.raises(PitrRefused, match="is running"):
        restore(pitr_cluster.target, target_time)
    pitr_cluster.cluster.stop()
    done = restore(pitr_cluster.target, target_time)
    assert done.status == "succeeded" and "pg_ctl -D" in done.details["start_with"]
    pitr_cluster.cluster.start()
    deadline = time.monotonic() + 60
    while pitr_cluster.sql("SELECT pg_is_in_recovery()")[0][0]:
        assert time.monotonic() < deadline, "recovery did not finish"
        time.sleep(0.2)
    assert pitr_cluster.sql("SELECT id FROM precious ORDER BY id") == [(1,), (2,)]
    assert pitr_cluster.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0] > timeline_before
    assert list(PitrRun.objects.values_list("kind", "status").order_by("pk")) == [
        ("backup", "succeeded"),
        ("verify", "succeeded"),
        ("restore", "refused"),
        ("restore", "succeeded"),
    ]


def test_restore__refuses_a_time_outside_the_window_and_names_it(pitr_cluster):
    pitr_cluster.enable_archiving()
    pitr_cluster.cluster.start()
    assert all(line.ok for line in setup_check(pitr_cluster.target, fix=True))
    before_any_backup = datetime.datetime.now(tz=datetime.UTC) - datetime.timedelta(hours=1)
    backup(pitr_cluster.target, backup_type="full")
    with pytest.raises(PitrRefused, match=r"outside the recoverable window \d{4}-\d\d-\d\d .* \.\. ") as refused:
        restore(pitr_cluster.target, before_any_backup, data_dir=pitr_cluster.root / "restored")
    assert before_any_backup.isoformat() in str(refused.value)
    assert not (pitr_cluster.root / "restored").exists()
    # Health: a fresh window is fine; the same window seen two hours later is a warning.
    assert pitr_findings(pitr_cluster.target, max_age=3600) == []
    later = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(hours=2)
    (finding,) = pitr_findings(pitr_cluster.target, max_age=3600, now=later)
    assert finding.level == "warning" and "latest restorable time is 1" in finding.message


def test_command__refuses_when_pitr_is_not_configured():
    with pytest.raises(CommandError, match="DATABASE_PITR_ENGINE=pgbackrest") as refused:
        call_command("pitr", "status")
    assert refused.value.returncode == 1


def test_setup_check__a_managed_database_is_named_not_configured():
    target = PitrTarget(
        stanza="dbops",
        repo_path=Path("/nonexistent"),
        pg_path=Path("/nonexistent"),
        pg_port=5432,
        socket_path="/var/run/postgresql",
        pg_user="app",
        conninfo={"host": "prod.abc123.eu-west-1.rds.amazonaws.com"},
    )
    (line,) = setup_check(target)
    assert line.ok and "Amazon RDS / Aurora does point-in-time recovery itself" in line.detail


def test_restore__a_relative_or_file_target_is_refused_before_anything_runs(pitr_cluster, tmp_path):
    when = datetime.datetime.now(datetime.UTC)
    with pytest.raises(PitrRefused, match="is relative"):
        restore(pitr_cluster.target, when, data_dir=Path("restored"))
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    with pytest.raises(PitrRefused, match="is a file, not a directory"):
        restore(pitr_cluster.target, when, data_dir=a_file)


def test_restore__a_wrong_password_is_named_not_taken_for_a_stopped_server(pitr_cluster):
    import dataclasses

    pitr_cluster.cluster.start()
    wrong = dataclasses.replace(pitr_cluster.target, conninfo={**pitr_cluster.target.conninfo, "password": "wrong"})
    from dbops.backups.pitr import _server_running

    with pytest.raises(PitrRefused, match="password authentication failed"):
        _server_running(wrong)
    pitr_cluster.cluster.stop()
    assert _server_running(pitr_cluster.target) is False


def test_restore_to_a_new_directory__the_copy_does_not_archive_into_the_live_stanza(pitr_cluster, tmp_path):
    pitr_cluster.enable_archiving()
    pitr_cluster.cluster.start()
    assert all(line.ok for line in setup_check(pitr_cluster.target, fix=True))
    backup(pitr_cluster.target, backup_type="full")
    time.sleep(1.1)  # pgBackRest stop times have one-second resolution
    target_time = pitr_cluster.sql("SELECT clock_timestamp()")[0][0]
    pitr_cluster.sql("CREATE TABLE after_target (id int)")  # WAL to switch away from
    pitr_cluster.sql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 30
    while pitr_cluster.sql("SELECT last_archived_time FROM pg_stat_archiver")[0][0] <= target_time:
        assert time.monotonic() < deadline, "WAL was not archived"
        time.sleep(0.2)
    copy_dir = pitr_cluster.root / "copy"
    done = restore(pitr_cluster.target, target_time, data_dir=copy_dir)
    assert done.status == "succeeded"
    port = free_port()
    copy = LocalCluster(data_dir=copy_dir, port=port, bindir=find_bindir(), password=pitr_cluster.cluster.password)
    with (copy_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"port = {port}\n")
    copy.start()
    try:
        with psycopg.connect(copy.url(), autocommit=True) as conn:
            assert conn.execute("SHOW archive_mode").fetchone() == ("off",)
    finally:
        copy.stop(mode="immediate")


def test_setup_check__the_operators_own_config_keys_are_kept_and_only_dbops_keys_are_checked(pitr_cluster):
    pitr_cluster.cluster.start()
    setup_check(pitr_cluster.target, fix=True)
    config = pitr_cluster.target.config_file
    config.write_text(config.read_text().replace("[global]\n", "[global]\ncompress-type=zst\n", 1))

    def config_line(fix: bool = False):
        return next(line for line in setup_check(pitr_cluster.target, fix=fix) if line.name == "configuration file")

    assert config_line().ok  # an edit of the operator's own is not "different"
    config.write_text(config.read_text().replace("repo1-retention-full=2", "repo1-retention-full=9"))
    line = config_line()
    assert not line.ok and "[global] repo1-retention-full" in line.detail
    assert config_line(fix=True).ok
    text = config.read_text()
    assert "compress-type=zst" in text and "repo1-retention-full=2" in text  # --fix set dbops' key, kept theirs


def test_window__its_end_is_the_last_archived_commit_and_a_restore_there_reaches_it(pitr_cluster):
    pitr_cluster.enable_archiving()
    pitr_cluster.cluster.start()
    assert all(line.ok for line in setup_check(pitr_cluster.target, fix=True))
    backup(pitr_cluster.target, backup_type="full")
    time.sleep(1.1)  # pgBackRest stop times have one-second resolution
    pitr_cluster.sql("CREATE TABLE last_one (id int)")
    committed = pitr_cluster.sql("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    pitr_cluster.sql("SELECT pg_switch_wal()")  # archived after the commit: the archive time is later
    deadline = time.monotonic() + 30
    while pitr_cluster.sql("SELECT last_archived_time FROM pg_stat_archiver")[0][0] <= committed:
        assert time.monotonic() < deadline, "WAL was not archived"
        time.sleep(0.2)
    archived_at = pitr_cluster.sql("SELECT last_archived_time FROM pg_stat_archiver")[0][0]

    latest = status(pitr_cluster.target)["latest_restorable"]
    assert latest < committed < archived_at  # the commit's time, not the archiving's
    assert committed - latest < datetime.timedelta(seconds=1)
    with pytest.raises(PitrRefused, match="outside the recoverable window"):
        restore(pitr_cluster.target, archived_at, data_dir=pitr_cluster.root / "too-late")
    done = restore(pitr_cluster.target, latest, data_dir=pitr_cluster.root / "at-the-end")
    assert done.status == "succeeded" and done.details["reached_target"] == "yes"  # started, recovered, promoted

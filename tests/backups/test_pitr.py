"""Point-in-time recovery with pgBackRest on real throwaway clusters (as the postgres OS user when root)."""

from __future__ import annotations

import dataclasses
import datetime
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dbops.backups.pitr import (
    PitrRefused,
    PitrTarget,
    backup,
    record_journal,
    restore,
    setup_check,
    status,
    verify,
)
from dbops.health.pitr import pitr_findings
from dbops.localdb import LocalCluster, find_bindir, free_port
from dbops.models import PitrRun
from tests.tiers import require_tool, tier_of

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def pgbackrest_installed(request):
    if tier_of(request.node) == "system":
        require_tool("pgbackrest", how="make test installs Debian's pgbackrest")


APP_ROLE, APP_PASSWORD = "app", 'app-pw "with" ;symbols'
MAINT_PASSWORD = "maint-pw:with@symbols/+="


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
            # dbops itself connects as the site does: a non-superuser application role.
            conninfo={
                "host": "127.0.0.1",
                "port": self.cluster.port,
                "user": APP_ROLE,
                "password": APP_PASSWORD,
                "dbname": "postgres",
            },
        )
        self.configure(f"unix_socket_directories = '{self.socket_dir}'")

    def start(self) -> None:
        """Start the server; the first time, create the application role (LOGIN, nothing more)."""
        self.cluster.start()
        if not self.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)):
            self.sql(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER PASSWORD '{APP_PASSWORD}'")

    def configure(self, *lines: str) -> None:
        with (self.cluster.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write("\n".join(lines) + "\n")

    def enable_archiving(self) -> None:
        self.configure(*_archiving_lines(self.target))

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
    pitr_cluster.start()
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
    pitr_cluster.start()
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
    pitr_cluster.start()
    deadline = time.monotonic() + 60
    while pitr_cluster.sql("SELECT pg_is_in_recovery()")[0][0]:
        assert time.monotonic() < deadline, "recovery did not finish"
        time.sleep(0.2)
    assert pitr_cluster.sql("SELECT id FROM precious ORDER BY id") == [(1,), (2,)]
    assert pitr_cluster.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0] > timeline_before
    # The in-place restore ran while its server was down: journaled, then recorded once the server answers.
    assert not PitrRun.objects.filter(kind="restore", status="succeeded").exists()
    assert record_journal(pitr_cluster.target) == 1
    assert PitrRun.objects.get(kind="restore", status="succeeded").details["reached_target"] == "yes"
    assert list(PitrRun.objects.values_list("kind", "status").order_by("pk")) == [
        ("backup", "succeeded"),
        ("verify", "succeeded"),
        ("restore", "refused"),
        ("restore", "succeeded"),
    ]


def test_restore__refuses_a_time_outside_the_window_and_names_it(pitr_cluster):
    pitr_cluster.enable_archiving()
    pitr_cluster.start()
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


@pytest.mark.database
def test_command__refuses_when_pitr_is_not_configured():
    with pytest.raises(CommandError, match="DATABASE_PITR_ENGINE=pgbackrest") as refused:
        call_command("pitr", "status")
    assert refused.value.returncode == 1


@pytest.mark.database
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
    pitr_cluster.start()
    wrong = dataclasses.replace(pitr_cluster.target, conninfo={**pitr_cluster.target.conninfo, "password": "wrong"})
    from dbops.backups.pitr import server_running

    with pytest.raises(PitrRefused, match="password authentication failed"):
        server_running(wrong)
    pitr_cluster.cluster.stop()
    assert server_running(pitr_cluster.target) is False


def test_restore_to_a_new_directory__the_copy_does_not_archive_into_the_live_stanza(pitr_cluster, tmp_path):
    pitr_cluster.enable_archiving()
    pitr_cluster.start()
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
    pitr_cluster.start()
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
    pitr_cluster.start()
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


def test_setup_check__a_maintenance_user_without_grants_gets_them_printed_and_then_backs_up(pitr_cluster):
    # The site's own database is not pgBackRest's: the grants must go where pgBackRest connects (postgres).
    maintenance = dataclasses.replace(
        pitr_cluster.target,
        pg_user="pgbackrest_maint",
        pg_password=MAINT_PASSWORD,
        conninfo={**pitr_cluster.target.conninfo, "dbname": "appdb"},
    )
    hba = pitr_cluster.cluster.data_dir / "pg_hba.conf"  # the maintenance user signs in with its password locally
    hba.write_text("local all pgbackrest_maint scram-sha-256\n" + hba.read_text())
    pitr_cluster.enable_archiving()
    pitr_cluster.start()
    pitr_cluster.sql("CREATE DATABASE appdb")
    lines = {line.name: line for line in setup_check(maintenance, fix=True)}
    assert (
        not lines["maintenance user"].ok and lines["maintenance user"].detail == "role pgbackrest_maint does not exist"
    )
    assert "stanza" not in lines

    pitr_cluster.sql(f"CREATE ROLE pgbackrest_maint LOGIN PASSWORD '{MAINT_PASSWORD}'")
    line = next(line for line in setup_check(maintenance, fix=True) if line.name == "maintenance user")
    assert not line.ok
    for needed in (
        "pg_read_all_settings",
        "pg_monitor",
        "pg_checkpoint",
        "pg_backup_start(text, boolean)",
        "pg_backup_stop(boolean)",
        "pg_switch_wal()",
        "pg_create_restore_point(text)",
    ):
        assert needed in line.detail and needed in line.fix
    # What setup-check prints is what a superuser runs, in the database it names: then pgBackRest works as that user.
    prefix = "as a superuser, connected to database postgres (the one pgBackRest uses): "
    assert line.fix.startswith(prefix), line.fix
    for statement in line.fix.removeprefix(prefix).rstrip(";").split("; "):
        pitr_cluster.sql(statement)  # connected to postgres
    lines = setup_check(maintenance, fix=True)
    assert all(line.ok for line in lines), [line for line in lines if not line.ok]
    assert "not a superuser" in next(line.detail for line in lines if line.name == "maintenance user")
    assert backup(maintenance, backup_type="full").status == "succeeded"
    assert not pitr_cluster.sql("SELECT rolsuper FROM pg_roles WHERE rolname = 'pgbackrest_maint'")[0][0]
    assert "pg1-database=postgres" in maintenance.config_file.read_text()
    # The site's logical dumps carry no GRANT on a system function (backup_verify could not restore one).
    dump = subprocess.run(
        [str(find_bindir() / "pg_dump"), "--schema-only", pitr_cluster.cluster.url("appdb")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "pg_backup_start" not in dump and "pg_catalog.pg_switch_wal" not in dump
    assert MAINT_PASSWORD not in repr(maintenance)


@pytest.mark.database
def test_pitr_target__the_maintenance_user_setting_replaces_the_sites_user(settings):
    from dbops.conf import PitrConfig

    settings.DBOPS = dataclasses.replace(
        settings.DBOPS,
        pitr=PitrConfig(
            engine="pgbackrest", pg_path="/srv/pg", maintenance_user="pgbackrest_maint", maintenance_password="m"
        ),
    )
    target = PitrTarget.from_settings()
    assert (target.pg_user, target.pg_password) == ("pgbackrest_maint", "m")
    assert target.conninfo["user"] != "pgbackrest_maint"  # dbops' own queries stay the site's


def _wait_until_archived(pitr_cluster, after: datetime.datetime) -> None:
    pitr_cluster.sql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 60
    while (pitr_cluster.sql("SELECT last_archived_time FROM pg_stat_archiver")[0][0] or after) <= after:
        assert time.monotonic() < deadline, "WAL was not archived"
        time.sleep(0.2)


def test_repository_in_a_bucket__backup_and_restore_to_a_time_go_through_the_store(pitr_cluster, s3_tls_server):
    from dbops.conf import BackupS3Config

    store = BackupS3Config(
        bucket="pitr-bucket",
        prefix="site/",
        endpoint_url=s3_tls_server.url,
        access_key=s3_tls_server.ACCESS_KEY,
        secret_key=s3_tls_server.SECRET_KEY,
    )
    # TLS verified against the store's own (self-signed) certificate, as with a private CA.
    target = dataclasses.replace(pitr_cluster.target, repo_s3=store, s3_ca_file=str(s3_tls_server.certificate))
    pitr_cluster.configure(*_archiving_lines(target))
    pitr_cluster.start()
    lines = {line.name: line for line in setup_check(target, fix=True)}
    assert not lines["stanza"].ok and "NoSuchBucket" in lines["stanza"].detail  # no bucket yet: named
    assert "s3://pitr-bucket/site/pgbackrest" in lines["stanza"].detail and "create the bucket" in lines["stanza"].fix
    s3_tls_server.client().create_bucket(Bucket="pitr-bucket")
    lines = setup_check(target, fix=True)
    assert all(line.ok for line in lines), [line for line in lines if not line.ok]
    config_text = target.config_file.read_text()
    assert "repo1-type=s3" in config_text and oct(target.config_file.stat().st_mode & 0o777) == "0o600"
    assert store.secret_key not in "".join(str(line) for line in lines)

    pitr_cluster.sql("CREATE TABLE precious (id int PRIMARY KEY)")
    pitr_cluster.sql("INSERT INTO precious VALUES (1)")
    assert backup(target, backup_type="full").status == "succeeded"
    time.sleep(1.1)  # pgBackRest stop times have one-second resolution
    pitr_cluster.sql("INSERT INTO precious VALUES (2)")
    target_time = pitr_cluster.sql("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    pitr_cluster.sql("DROP TABLE precious")  # the mistake
    _wait_until_archived(pitr_cluster, target_time)
    assert not (target.repo_path / "repo").exists()  # nothing of the repository on this host
    keys = [o["Key"] for o in s3_tls_server.client().list_objects_v2(Bucket="pitr-bucket")["Contents"]]
    assert any(key.startswith("site/pgbackrest/backup/proof/") for key in keys)
    assert any(key.startswith("site/pgbackrest/archive/proof/") for key in keys)
    window = status(target)
    assert window["earliest_restorable"] <= target_time <= window["latest_restorable"]
    assert window["latest_restorable"] < pitr_cluster.sql("SELECT last_archived_time FROM pg_stat_archiver")[0][0]
    assert verify(target).status == "succeeded"

    # A new machine with only the bucket and the credentials: the old server and its data are gone.
    pitr_cluster.cluster.stop(mode="immediate")
    shutil.rmtree(pitr_cluster.cluster.data_dir)
    target.config_file.unlink()
    lines = {line.name: line for line in setup_check(target, fix=True)}  # writes the configuration, names the rest
    assert lines["configuration file"].ok and not lines["server"].ok
    done = restore(target, target_time, data_dir=pitr_cluster.root / "from-the-bucket")
    assert done.status == "succeeded" and done.details["reached_target"] == "yes"
    port = free_port()
    copy = LocalCluster(
        data_dir=pitr_cluster.root / "from-the-bucket",
        port=port,
        bindir=find_bindir(),
        password=pitr_cluster.cluster.password,
    )
    with (copy.data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"port = {port}\n")
    copy.start()
    try:
        with psycopg.connect(copy.url(), autocommit=True) as conn:
            assert conn.execute("SELECT id FROM precious ORDER BY id").fetchall() == [(1,), (2,)]
    finally:
        copy.stop(mode="immediate")


def _archiving_lines(target: PitrTarget) -> tuple[str, ...]:
    command = target.archive_command().replace("'", "''")
    return ("archive_mode = on", f"archive_command = '{command}'", "archive_timeout = 60")


def test_command__an_in_place_restore_of_the_sites_own_database_is_recorded_once_it_is_back(pitr_cluster):
    """The history lives in the database being restored: the run is journaled, then saved into the restored one."""
    from urllib.parse import quote

    from tests.parts.site import manage

    pitr_cluster.enable_archiving()
    pitr_cluster.start()
    pitr_cluster.sql(f"CREATE DATABASE site OWNER {APP_ROLE}")
    env = {
        "DATABASE_URL": f"postgres://{APP_ROLE}:{quote(APP_PASSWORD, safe='')}@127.0.0.1:{pitr_cluster.cluster.port}"
        "/site",
        "DATABASE_PITR_ENGINE": "pgbackrest",
        "DATABASE_PITR_PG_PATH": str(pitr_cluster.cluster.data_dir),
        "DATABASE_PITR_REPO_PATH": str(pitr_cluster.target.repo_path),
        "DATABASE_PITR_STANZA": pitr_cluster.target.stanza,
        "DATABASE_PITR_PG_SOCKET_PATH": str(pitr_cluster.socket_dir),
        "DATABASE_PITR_PG_USER": "postgres",  # peer over the socket; the site's own role stays unprivileged
    }

    def site_sql(statement: str):
        with psycopg.connect(pitr_cluster.cluster.url("site"), autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else None

    assert manage("migrate", "--noinput", **env).returncode == 0
    checked = manage("pitr", "setup-check", "--fix", **env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert manage("pitr", "backup", **env).returncode == 0
    site_sql("CREATE TABLE precious (id int)")
    site_sql("INSERT INTO precious VALUES (1)")
    time.sleep(1.1)  # pgBackRest stop times have one-second resolution
    target_time = site_sql("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    site_sql("DROP TABLE precious")  # the mistake
    _wait_until_archived(pitr_cluster, target_time)
    pitr_cluster.cluster.stop()

    restored = manage("pitr", "restore", "--target-time", target_time.isoformat(), "--noinput", **env)
    assert restored.returncode == 0, restored.stderr
    assert "recorded in the history by the next pitr command" in restored.stdout
    assert "WARNING" not in restored.stderr and "pool" not in restored.stderr  # no pool retrying a stopped server
    pitr_cluster.start()  # the operator starts it as usual
    later = manage("pitr", "status", **env)
    assert later.returncode == 0 and "1 run(s) made while the database was down are now in the history" in later.stderr
    assert site_sql("SELECT id FROM precious") == [(1,)]
    (run,) = site_sql("SELECT status, details->>'reached_target', finished_at IS NOT NULL FROM dbops_pitrrun "
                      "WHERE kind = 'restore'")  # fmt: skip
    assert run == ("succeeded", "yes", True)


@pytest.mark.database
def test_record_journal__reads_back_only_valid_pitr_runs_and_sets_the_rest_aside(tmp_path, django_user_model):
    """The journal is a file on disk: a line for auth.user must never become a user (let alone a superuser)."""
    import json as json_module

    from django.db import connection as db

    from dbops.backups.pitr.runs import JOURNAL_NAME, REFUSED_NAME

    params = db.get_connection_params()
    target = PitrTarget(
        stanza="dbops",
        repo_path=tmp_path,
        pg_path=tmp_path / "data",
        pg_port=int(params.get("port") or 5432),
        socket_path="/var/run/postgresql",
        pg_user="postgres",
        conninfo={k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")},
    )
    now = "2026-12-03T04:00:00Z"
    run = {"kind": "restore", "status": "succeeded", "started_at": now, "stanza": "dbops", "details": {}}
    lines = [
        {"model": "auth.user", "pk": 99, "fields": {"username": "intruder", "is_superuser": True, "password": "x"}},
        {"model": "dbops.pitrrun", "pk": 7, "fields": run},
        {"model": "dbops.pitrrun", "pk": 8, "fields": {**run, "status": "owned"}},  # not a status
        "not json at all",
    ]
    (tmp_path / JOURNAL_NAME).write_text(
        "\n".join(line if isinstance(line, str) else json_module.dumps(line) for line in lines) + "\n"
    )
    assert record_journal(target) == 1
    assert not django_user_model.objects.filter(username="intruder").exists()
    assert list(PitrRun.objects.values_list("kind", "status")) == [("restore", "succeeded")]
    assert not (tmp_path / JOURNAL_NAME).exists()
    assert len((tmp_path / REFUSED_NAME).read_text().splitlines()) == 3  # set aside for a person, not loaded


def test_window__a_wiped_repository_shows_no_window_whatever_the_server_archived(pitr_cluster):
    pitr_cluster.enable_archiving()
    pitr_cluster.start()
    assert all(line.ok for line in setup_check(pitr_cluster.target, fix=True))
    backup(pitr_cluster.target, backup_type="full")
    assert status(pitr_cluster.target)["latest_restorable"] is not None
    assert pitr_cluster.sql("SELECT last_archived_time FROM pg_stat_archiver")[0][0] is not None

    for part in ("backup", "archive"):  # the bucket emptied: a lifecycle rule, a hand, an attacker
        shutil.rmtree(pitr_cluster.target.repo_path / "repo" / part)

    report = status(pitr_cluster.target)
    assert report["backups"] == [] and report["latest_restorable"] is None and report["earliest_restorable"] is None

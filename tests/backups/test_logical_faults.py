"""Backups and restores without surprises: exact restores, no CREATEDB, a full disk, `kill -9`, bad ids.

Also bad settings, and no pg_dump command line in the output. Real cluster, real processes, a real tmpfs.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys

import pytest
from django.db import connection
from psycopg import sql

from dbops.backups import logical as backups
from dbops.exceptions import BackupError
from dbops.models import BackupRecord, RestoreRecord
from tests import PROJECT_DIR
from tests.backups.conftest import content_hashes, direct
from tests.conftest import test_database_connection
from tests.factories import UserFactory
from tests.parts.site import manage, url_of_test_database
from tests.parts.waiting import wait_for
from tests.tiers import require_tool

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("backup_dir")]


def cli_environ(backup_folder, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": url_of_test_database(), "DATABASE_BACKUP_DIR": str(backup_folder), **extra}


def execute(statement: str) -> None:
    with test_database_connection() as conn:
        conn.execute(statement)


# -- 5: a restore is exact --------------------------------------------------------------------------------------
def test_restore__tables_created_since_are_dropped_and_the_safety_backup_undoes_it_exactly():
    UserFactory.create_batch(12)
    at_backup = content_hashes()
    record = backups.take_backup()

    # After the backup: a new table referencing an old one (the foreign key would stop pg_restore's DROP), a
    # table in another schema, and changed rows.
    execute(
        "CREATE TABLE notes (id serial PRIMARY KEY, author_id int REFERENCES auth_user(id), body text);"
        "INSERT INTO notes (author_id, body) SELECT id, 'note ' || id FROM auth_user;"
        "CREATE SCHEMA reporting; CREATE TABLE reporting.daily (day date PRIMARY KEY, total int);"
        "INSERT INTO reporting.daily VALUES ('2026-11-01', 3);"
        "UPDATE auth_user SET first_name = 'changed';"
    )
    before_restore = content_hashes()
    assert {"public.notes", "reporting.daily"} <= set(before_restore)

    restore = backups.restore_backup(record, requested_by="test")
    assert restore.status == RestoreRecord.Status.SUCCEEDED
    assert sorted(restore.dropped_tables) == ["public.notes", "reporting.daily"]
    assert content_hashes() == at_backup  # same tables, same rows: nothing more, nothing less

    undo = backups.restore_backup(BackupRecord.objects.get(pk=restore.safety_backup_id), requested_by="test")
    assert undo.status == RestoreRecord.Status.SUCCEEDED and undo.dropped_tables == []
    assert content_hashes() == before_restore
    execute("DROP TABLE notes; DROP SCHEMA reporting CASCADE;")


def test_restore__says_what_changes_then_keeps_alerts_and_the_admin_log_of_dbops_actions(django_user_model):
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    from dbops.models import Alert

    operator = django_user_model.objects.create_superuser("operator", "op@example.com", "pw-operator-12345")
    record = backups.take_backup()
    # Since the backup: a firing alert, the operator's audit entry, a new account (with its own entry), a migration.
    now = timezone.now()
    alert = Alert.objects.create(
        rule="backup_failed", subject="default", severity="critical", message="m", fired_at=now, last_seen_at=now
    )
    newcomer = django_user_model.objects.create_user("newcomer", password="pw-newcomer-12345")
    backup_type = ContentType.objects.get_for_model(BackupRecord)
    for user in (operator, newcomer):
        LogEntry.objects.create(
            user=user, content_type=backup_type, object_id=str(record.pk), object_repr=str(record),
            action_flag=CHANGE, change_message="Restore into test_dbops requested",
        )  # fmt: skip
    execute("INSERT INTO django_migrations (app, name, applied) VALUES ('later', '0001_initial', now())")

    lines = backups.restore_consequences(record)
    assert any("signed out" in line for line in lines), lines
    assert any("Accounts go back to the backup's: 1 then, 2 now" in line for line in lines), lines
    assert any("The schema goes back 1 migration(s)" in line for line in lines), lines

    backups.restore_backup(record, requested_by="test")
    assert Alert.objects.get(pk=alert.pk).state == Alert.State.FIRING  # the alert outlives the restore
    kept = LogEntry.objects.filter(content_type__app_label="dbops")
    assert list(kept.values_list("user_id", flat=True)) == [operator.pk]  # the newcomer's account is gone
    assert not django_user_model.objects.filter(username="newcomer").exists()
    with direct() as conn:
        assert conn.execute("SELECT count(*) FROM django_migrations WHERE app = 'later'").fetchone()[0] == 0


def test_restore__a_failing_restore_changes_nothing_and_ends_its_record():
    UserFactory.create_batch(3)
    # More SQL after the failing DROP than a pipe holds (64 KB): pg_restore must not be left blocked writing it.
    execute(
        "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, "
        "is_active, date_joined) SELECT 'x', false, 'bulk ' || g, '', '', '', false, true, now() "
        "FROM generate_series(1, 30000) g"
    )
    record = backups.take_backup()
    execute("CREATE TABLE later (id int); CREATE VIEW later_view AS SELECT * FROM auth_user;")
    before = content_hashes()
    # A view on auth_user that the backup does not know: pg_restore cannot drop auth_user, so the transaction rolls
    # back, extra-table drops included.
    with pytest.raises(BackupError, match="live database unchanged"):
        backups.restore_backup(record, requested_by="test")
    assert content_hashes() == before
    failed = RestoreRecord.objects.get(backup=record)
    assert failed.status == RestoreRecord.Status.FAILED and failed.finished_at is not None
    execute("DROP VIEW later_view; DROP TABLE later;")


# -- 6: a role without CREATEDB --------------------------------------------------------------------------------
@pytest.fixture
def role_without_createdb():
    """Yield a URL of the test database for a login role with every table privilege but no CREATEDB."""
    name, password = f"app_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    settings_dict = connection.settings_dict
    with test_database_connection() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD {}").format(sql.Identifier(name), password))
        conn.execute(sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {}").format(sql.Identifier(name)))
    yield (
        f"postgres://{name}:{password}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}",
        name,
    )
    with test_database_connection() as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_no_createdb__verify_and_restore_say_what_is_needed_and_finish_every_record(
    role_without_createdb,
    backup_dir,
):
    url, role = role_without_createdb
    record = backups.take_backup()

    verify = manage("backup_verify", "--id", str(record.pk), **cli_environ(backup_dir, DATABASE_URL=url))
    assert verify.returncode == 2, verify.stderr
    assert "Traceback" not in verify.stderr
    error = verify.stderr.strip().splitlines()[-1]
    assert f"role '{role}' lacks CREATEDB" in error and f'ALTER ROLE "{role}" CREATEDB' in error
    record.refresh_from_db()
    assert record.verification == BackupRecord.Verification.UNVERIFIED  # nothing was judged
    assert "lacks CREATEDB" in record.verification_details["not_run"]

    restore = manage("backup_restore", "--id", str(record.pk), "--noinput", **cli_environ(backup_dir, DATABASE_URL=url))
    assert restore.returncode == 1, restore.stderr
    assert "Traceback" not in restore.stderr and "lacks CREATEDB" in restore.stderr
    refused = RestoreRecord.objects.get(backup=record)
    assert refused.status == RestoreRecord.Status.REFUSED and refused.finished_at is not None


# -- 7: a full disk, kill -9, bad settings and ids ---------------------------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path):
    """Yield a 256 KiB tmpfs mounted for this test (needs root, as CI has)."""
    require_tool("root", how="mounting a tmpfs needs root; CI runs as root", found=os.geteuid() == 0)
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_full_disk__the_failed_backup_leaves_no_partial_file(settings, small_tmpfs):
    execute(
        "CREATE TABLE bulk AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v "
        "FROM generate_series(1, 40000) g"
    )
    try:
        settings.STORAGES = {
            **settings.STORAGES,
            "dbbackup": {**settings.STORAGES["dbbackup"], "OPTIONS": {"location": str(small_tmpfs)}},
        }
        with pytest.raises(BackupError, match="No space left on device"):
            backups.take_backup()
        record = BackupRecord.objects.get()
        assert record.status == BackupRecord.Status.FAILED and record.finished_at is not None
        assert os.listdir(small_tmpfs) == []  # the part written before the disk filled up is gone
    finally:
        execute("DROP TABLE bulk")


def test_kill_9__a_dead_backup_is_marked_failed_without_waiting_for_the_next_backup(backup_dir):
    holder = test_database_connection(autocommit=False)
    holder.execute("LOCK TABLE auth_user IN ACCESS EXCLUSIVE MODE")  # pg_dump waits here, mid-backup
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "backup"],
        cwd=PROJECT_DIR,
        env={**env, "DJANGO_ENV": "test", **cli_environ(backup_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING).exists(), timeout=60)
        wait_for(lambda: waiting_for_locks() >= 1, timeout=60)
        os.killpg(process.pid, signal.SIGKILL)  # the command and its pg_dump, as an OOM killer would
        process.wait(timeout=30)
    finally:
        holder.rollback()
        holder.close()
    wait_for(lambda: not advisory_lock_held(backups.BACKUP_LOCK_KEY), timeout=60)  # the server saw the client go

    listing = manage("backup_list", "--json", **cli_environ(backup_dir))
    assert listing.returncode in (0, 1), listing.stderr  # 1: a backup is due
    record = BackupRecord.objects.get()
    assert record.status == BackupRecord.Status.FAILED and record.finished_at is not None
    assert record.error.startswith("interrupted")


def waiting_for_locks() -> int:
    with test_database_connection() as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]


def advisory_lock_held(key: int) -> bool:
    with test_database_connection() as conn:
        return conn.execute(
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND ((classid::bigint << 32) | objid::bigint) = %s",
            [key],
        ).fetchone()[0]


@pytest.mark.parametrize("command", ["backup_verify", "backup_restore"])
def test_bad_ids__zero_is_refused_by_name_and_a_missing_backup_exits_4(command, backup_dir):
    noinput = ["--noinput"] if command == "backup_restore" else []
    zero = manage(command, "--id", "0", *noinput, **cli_environ(backup_dir))
    assert zero.returncode == 2 and "0 is not a record id" in zero.stderr
    missing = manage(command, "--id", "999", *noinput, **cli_environ(backup_dir))
    assert missing.returncode == 4, missing.stderr
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]  # one line
    assert "#999" in missing.stderr
    assert not RestoreRecord.objects.exists()  # nothing was tried


def test_keep_verified_zero__is_refused_in_one_line():
    result = manage("check", DATABASE_URL=url_of_test_database(), DATABASE_BACKUP_KEEP_VERIFIED="0")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "ImproperlyConfigured: DATABASE_BACKUP_KEEP_VERIFIED=0 is zero: set it to an integer >= 1."
    )


# -- 8: no pg_dump command line in the output ----------------------------------------------------------------------
def test_backup_output__has_no_dbbackup_debug_line(backup_dir):
    result = manage("backup", **cli_environ(backup_dir))
    assert result.returncode == 0, result.stderr
    assert "DEBUG" not in result.stderr + result.stdout
    assert "--dbname" not in result.stderr + result.stdout

"""Backups in a bucket: a real S3-compatible server (moto's, on loopback) through django-storages.

Round trip from the bucket with per-table content hashes, a changed object refused before anything is restored,
the store stopped during an upload (a failed record, nothing claimed good), and credentials in no output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from dbops.backups import logical as backups
from dbops.conf.config import BackupS3Config
from dbops.exceptions import BackupError
from dbops.health.backups import backup_findings
from dbops.models import BackupRecord, RestoreRecord
from tests.backups.conftest import content_hashes
from tests.conftest import test_database_connection
from tests.factories import UserFactory
from tests.parts.servers import S3Server

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
BUCKET = "dbops-backups"


def use_bucket(settings, server, **fields) -> None:
    s3 = BackupS3Config(
        bucket=BUCKET,
        prefix="site/backups/",
        endpoint_url=server.url,
        access_key=S3Server.ACCESS_KEY,
        secret_key=S3Server.SECRET_KEY,
        **fields,
    )
    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_s3=s3)
    settings.STORAGES = {**settings.STORAGES, "dbbackup": settings.DBOPS.backup_storage()}


@pytest.fixture
def bucket(settings, s3_server):
    """Point dbops' backups at a new bucket on the S3 server; yield the server."""
    s3_server.client().create_bucket(Bucket=BUCKET)
    use_bucket(settings, s3_server)
    return s3_server


def objects(server) -> list[str]:
    return sorted(o["Key"] for o in server.client().list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_bucket__backup_verify_restore_round_trip_with_per_table_hashes(bucket):
    UserFactory.create_batch(20)
    at_backup = content_hashes()
    record = backups.take_backup()
    assert record.storage == "S3Storage"
    assert objects(bucket) == [f"site/backups/{record.filename}", f"site/backups/{record.filename}.metadata"]

    assert backups.verify_backup(record).verification == BackupRecord.Verification.PASSED
    with test_database_connection() as conn:
        conn.execute("DELETE FROM auth_user WHERE id IN (SELECT id FROM auth_user LIMIT 5)")
        conn.execute("CREATE TABLE later (id int)")
    restore = backups.restore_backup(record, requested_by="test")
    assert restore.status == RestoreRecord.Status.SUCCEEDED
    assert content_hashes() == at_backup  # exactly the backup's tables and rows, read back from the bucket


def test_bucket__a_changed_object_is_refused_before_anything_is_restored(bucket):
    UserFactory.create_batch(3)
    record = backups.take_backup()
    body = bucket.client().get_object(Bucket=BUCKET, Key=f"site/backups/{record.filename}")["Body"].read()
    tampered = body[:-10] + bytes(10)
    bucket.client().put_object(Bucket=BUCKET, Key=f"site/backups/{record.filename}", Body=tampered)
    before = content_hashes()
    with pytest.raises(BackupError, match="sha256"):
        backups.restore_backup(record, requested_by="test")
    assert content_hashes() == before
    assert RestoreRecord.objects.get(backup=record).status == RestoreRecord.Status.REFUSED
    bucket.client().delete_object(Bucket=BUCKET, Key=f"site/backups/{record.filename}")
    assert "missing" in backups.verify_backup(record).verification_details["error"]


def test_bucket__the_store_stopped_during_an_upload_leaves_a_failed_record_and_nothing_claimed(bucket):
    with test_database_connection() as conn:  # a dump of several MB: the upload takes several requests
        conn.execute(
            "CREATE TABLE bulk AS SELECT g, md5(random()::text) || md5(random()::text) AS v "
            "FROM generate_series(1, 200000) g"
        )
    try:

        def stop_when_storing(stage: str) -> None:
            if stage.startswith("storing"):
                threading.Timer(0.05, bucket.stop).start()  # before or during the upload: the outcome is the same

        with pytest.raises(BackupError):
            backups.take_backup(progress=stop_when_storing)
        record = BackupRecord.objects.get()
        assert record.status == BackupRecord.Status.FAILED and record.finished_at is not None
        assert not record.sha256 and not record.filename  # nothing claims a good file
        assert BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED).count() == 0
    finally:
        with test_database_connection() as conn:
            conn.execute("DROP TABLE bulk")


def test_bucket__credentials_appear_in_no_output(bucket, capsys):
    call_command("backup", "--json")
    call_command("backup_verify", "--json")
    call_command("backup_list", "--json")
    output = capsys.readouterr()
    assert S3Server.SECRET_KEY not in output.out + output.err
    from django.conf import settings

    assert S3Server.SECRET_KEY not in repr(settings.DBOPS)


@pytest.fixture
def with_local_copy(bucket, settings, tmp_path):
    """Keep a local copy of each backup beside the bucket, for 2 days, in a folder of its own."""
    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_local_copy_days=2, backup_dir=tmp_path / "local")
    return tmp_path / "local"


def dump_files(folder) -> list[str]:
    return sorted(p.name for p in folder.glob("*.dump*") if not p.name.endswith(".metadata")) if folder.exists() else []


def newest_verified() -> dict:
    return {location: entry["id"] for location, entry in backups.backup_status()["newest_verified"].items()}


def test_local_copy__kept_beside_the_bucket_verified_on_its_own_and_pruned_by_its_own_retention(
    with_local_copy, bucket, settings
):
    UserFactory.create_batch(5)
    first = backups.take_backup()
    assert dump_files(with_local_copy) == [first.local_copy] and first.local_copy == first.filename
    assert oct((with_local_copy / first.local_copy).stat().st_mode & 0o777) == "0o600"
    assert objects(bucket) == [f"site/backups/{first.filename}", f"site/backups/{first.filename}.metadata"]
    assert newest_verified() == {"remote": None, "local": None}
    first = backups.verify_backup(first)
    assert first.verification_details["local_copy"] == "sha256 matches"
    assert newest_verified() == {"remote": first.pk, "local": first.pk}

    # A changed local copy: the bucket's file still verifies, the local location has no verified backup any more.
    path = with_local_copy / first.local_copy
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    first = backups.verify_backup(first)
    assert (
        first.verification == BackupRecord.Verification.PASSED and "differs" in first.verification_details["local_copy"]
    )
    assert newest_verified() == {"remote": first.pk, "local": None}
    health = {f.message for f in backup_findings(now=timezone.now() + datetime.timedelta(hours=49))}
    assert any("no backup on local disk has been verified" in m for m in health), health
    assert any(f"the newest verified backup in the bucket (#{first.pk}) is 49" in m for m in health), health

    # Retention per location: local copies go after 2 days (the newest verified stays), the bucket keeps 30 days.
    second = backups.verify_backup(backups.take_backup())
    third = backups.take_backup()
    for days, record in ((5, first), (4, second), (3, third)):
        BackupRecord.objects.filter(pk=record.pk).update(started_at=timezone.now() - datetime.timedelta(days=days))
    pruned = backups.prune_local_copies()
    assert {r.pk for r in pruned} == {first.pk, third.pk}  # second is the newest verified local copy: kept
    assert dump_files(with_local_copy) == [second.local_copy]
    assert backups.prune_backups() == []  # nothing in the bucket is past 30 days
    assert len([key for key in objects(bucket) if not key.endswith(".metadata")]) == 3
    assert newest_verified() == {"remote": second.pk, "local": second.pk}
    listing = io.StringIO()
    with contextlib.suppress(SystemExit):  # exit 1: a backup is due (the newest is three days old)
        call_command("backup_list", stdout=listing)
    assert f"Newest verified backup in the bucket: #{second.pk}, 96.0 h old." in listing.getvalue()
    assert f"Newest verified backup on local disk: #{second.pk}, 96.0 h old." in listing.getvalue()


def test_local_copy__an_unreachable_store_is_one_line_a_failed_record_an_alert_and_no_local_file(
    with_local_copy, bucket, settings
):
    from django.core.management.base import CommandError

    from dbops.models import Alert

    settings.DBOPS = dataclasses.replace(settings.DBOPS, alerts=dataclasses.replace(settings.DBOPS.alerts, events=True))
    bucket.stop()
    with pytest.raises(CommandError) as failed:
        call_command("backup")
    assert "\n" not in str(failed.value) and failed.value.returncode == 2
    record = BackupRecord.objects.get()
    assert record.status == BackupRecord.Status.FAILED and record.finished_at is not None and record.error
    assert dump_files(with_local_copy) == []  # no local copy claims what the bucket never got
    deadline = time.monotonic() + 60  # the event is evaluated on a thread in a process that serves requests
    while not Alert.objects.filter(rule="backup_failed", state=Alert.State.FIRING).exists():
        assert time.monotonic() < deadline, "no backup_failed alert"
        time.sleep(0.1)


def one_line_error(name: str, *args: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        call_command(name, *args)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message, message
    return caught.value


def test_store_down__verify_and_prune_say_so_in_one_line_and_exit_2(bucket):
    record = backups.take_backup()
    bucket.stop()
    for name, args in (("backup_verify", ("--id", str(record.pk))), ("backup_prune", ())):
        error = one_line_error(name, *args)
        assert error.returncode == 2, (name, error)  # an error, not 1 (a finding about the backup)
        assert str(error).startswith(f"the backup storage s3://{BUCKET}/site/backups/ at {bucket.url} cannot be used")
    record.refresh_from_db()
    assert record.verification == BackupRecord.Verification.UNVERIFIED  # nothing was judged


def test_store_frozen__a_backup_fails_within_its_deadline_and_releases_the_lock(bucket, settings):
    import os
    import signal

    use_bucket(settings, bucket, connect_timeout=1, read_timeout=1)
    moto = bucket.processes[0]
    os.kill(moto.pid, signal.SIGSTOP)  # accepts connections (the kernel does), answers nothing
    try:
        started = time.monotonic()
        with pytest.raises(BackupError):
            backups.take_backup()
        assert time.monotonic() - started < 30  # two attempts of a 1 s read timeout, not minutes
    finally:
        os.kill(moto.pid, signal.SIGCONT)
    assert BackupRecord.objects.get().status == BackupRecord.Status.FAILED
    assert backups.take_backup().status == BackupRecord.Status.SUCCEEDED  # the lock was let go


def test_private_ca__one_setting_makes_the_store_trusted(settings, s3_tls_server):
    s3_tls_server.client().create_bucket(Bucket=BUCKET)
    use_bucket(settings, s3_tls_server)
    error = one_line_error("backup")
    assert error.returncode == 2 and "certificate" in str(error).lower(), error
    use_bucket(settings, s3_tls_server, ca_file=str(s3_tls_server.certificate))
    record = backups.take_backup()
    assert backups.verify_backup(record).verification == BackupRecord.Verification.PASSED


def test_prune__aborts_unfinished_uploads_of_this_sites_dead_backups_only(bucket):
    from dbops.backups.logical.storage import backup_file_name

    died = BackupRecord.objects.create(
        started_at=timezone.now(), database_name="app", status=BackupRecord.Status.FAILED, error="killed"
    )
    ours = backup_file_name(died, "dump.age")
    client = bucket.client()
    for name in (ours, "shop-20261101-000000-999.dump"):  # the second: another site sharing the prefix
        client.create_multipart_upload(Bucket=BUCKET, Key=f"site/backups/{name}")

    def unfinished() -> list[str]:
        return sorted(u["Key"] for u in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))

    assert f"upload:{ours}" in backups.prune_orphans(dry_run=True).ours
    assert len(unfinished()) == 2
    backups.prune_orphans()
    assert unfinished() == ["site/backups/shop-20261101-000000-999.dump"]


def test_store_frozen__the_whole_upload_has_a_deadline_too(bucket, settings):
    import os
    import signal

    use_bucket(settings, bucket, connect_timeout=30, read_timeout=30)  # each request alone would wait a minute
    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_upload_deadline=2)
    moto = bucket.processes[0]
    os.kill(moto.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(BackupError, match="DATABASE_BACKUP_UPLOAD_DEADLINE=2 s"):
            backups.take_backup()
        assert time.monotonic() - started < 20
    finally:
        os.kill(moto.pid, signal.SIGCONT)
    record = BackupRecord.objects.get()
    assert record.status == BackupRecord.Status.FAILED and not record.filename

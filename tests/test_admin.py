"""The admin: read-only history with badges and filters; verify, download and restore actions."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.urls import reverse

from dbops.backups import logical as backups
from dbops.models import BackupRecord, RestoreRecord
from tests.factories import BackupRecordFactory, UserFactory

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def staff_with(django_user_model, client, name: str, *codenames: str):
    """Log in a staff user holding exactly these permissions."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(name, password="pw-staff-1234", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


@pytest.fixture
def staff_client(client, django_user_model):
    """Log in a staff user who may only view the backup history."""
    return staff_with(django_user_model, client, "staff", "view_backuprecord")


@pytest.fixture
def verifier_client(django_user_model):
    from django.test import Client

    return staff_with(django_user_model, Client(), "verifier", "view_backuprecord", "verify_backuprecord")


def test_backup_admin__read_only_history_with_badges_and_filters(admin_client):
    BackupRecordFactory(status="failed", verification="unverified", size_bytes=None, error="pg_dump: boom")
    BackupRecordFactory(size_bytes=5 * 1024 * 1024)
    response = admin_client.get(reverse("admin:dbops_backuprecord_changelist"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "5.0\xa0MB" in body and "failed" in body and "passed" in body
    assert admin_client.get(reverse("admin:dbops_backuprecord_changelist") + "?status__exact=failed").status_code == 200
    assert admin_client.get(reverse("admin:dbops_backuprecord_add")).status_code == 403
    record = BackupRecord.objects.get(status="failed")
    change = admin_client.post(reverse("admin:dbops_backuprecord_change", args=[record.pk]), {"status": "succeeded"})
    record.refresh_from_db()
    assert change.status_code == 403 and record.status == "failed"


@pytest.mark.system
def test_backup_admin__verify_needs_its_permission_and_is_logged(admin_client, staff_client, verifier_client):
    from django.contrib.admin.models import LogEntry

    UserFactory.create_batch(3)
    record = backups.take_backup()
    changelist = reverse("admin:dbops_backuprecord_changelist")
    action = {"action": "verify_selected", "_selected_action": [record.pk]}
    view_only = staff_client.post(changelist, action, follow=True).content.decode()
    record.refresh_from_db()
    assert "verify_selected" not in view_only and record.verification == "unverified"  # no such action for them

    response = verifier_client.post(changelist, action, follow=True)
    assert f"Backup #{record.pk}: verification passed" in response.content.decode()
    entry = LogEntry.objects.get(object_id=str(record.pk))
    assert (entry.user.username, entry.get_change_message()) == ("verifier", "Verified: passed")

    download = reverse("admin:dbops_backuprecord_download", args=[record.pk])
    assert staff_client.get(download).status_code == 403
    assert verifier_client.get(download).status_code == 403
    response = admin_client.get(download)
    assert response.status_code == 200
    import hashlib

    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == record.sha256
    assert LogEntry.objects.filter(object_id=str(record.pk), change_message="Downloaded the backup file").exists()


@pytest.mark.system
def test_backup_admin__restore_needs_confirmation_naming_the_database(admin_client, staff_client):
    UserFactory.create_batch(2)
    record = backups.take_backup()
    UserFactory.create_batch(4)
    url = reverse("admin:dbops_backuprecord_restore", args=[record.pk])
    database = connection.settings_dict["NAME"]

    assert staff_client.get(url).status_code == 403
    page = admin_client.get(url).content.decode()
    assert f"<code>{database}</code>" in page and "safety backup" in page

    admin_client.post(url, {"confirm_database": "wrong"})
    assert not RestoreRecord.objects.exists()

    response = admin_client.post(url, {"confirm_database": database}, follow=True)
    assert f"Restored backup #{record.pk} into {database}" in response.content.decode()
    from django.contrib.auth import get_user_model

    # The admin user was created after the backup; the restored user table holds the backup's users.
    assert get_user_model().objects.filter(username__startswith="user").count() == 2
    assert RestoreRecord.objects.get().status == "succeeded"


def test_admin_login__five_wrong_passwords_lock_the_account_out_even_for_the_right_one(client, django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "the-right-password-1234")
    login = "/admin/login/?next=/admin/"
    statuses = [client.post(login, {"username": "boss", "password": "a-guess"}).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]  # the form again four times; the fifth failure locks out
    locked = client.post(login, {"username": "boss", "password": "the-right-password-1234"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.system
def test_backup_detail__reads_well_and_offers_verify_restore_download_by_permission(admin_client, staff_client):
    UserFactory.create_batch(4)
    record = backups.take_backup()
    url = reverse("admin:dbops_backuprecord_change", args=[record.pk])

    html = admin_client.get(url).content.decode()
    assert 'id="verify-backup"' in html and 'id="restore-backup"' in html and 'id="download-backup"' in html
    users = record.row_counts["public.auth_user"]
    assert f"<td>public.auth_user</td><td>{users}</td>" in html  # a table of row counts, not raw JSON
    assert '{"public.' not in html
    assert re.search(r"<div class=\"readonly\">\d+\.\d s</div>", html)  # "0.2 s", not 0.21661...
    assert str(record.duration_seconds) not in html

    verified = admin_client.post(reverse("admin:dbops_backuprecord_verify", args=[record.pk]), follow=True)
    assert "verification passed" in verified.content.decode()
    record.refresh_from_db()
    assert record.verification == BackupRecord.Verification.PASSED

    viewer = staff_client.get(url).content.decode()  # may view, nothing else: no buttons, and the views refuse
    assert "verify-backup" not in viewer and "restore-backup" not in viewer and "download-backup" not in viewer
    assert staff_client.post(reverse("admin:dbops_backuprecord_verify", args=[record.pk])).status_code == 403


def test_empty_history__says_what_fills_it(admin_client):
    html = admin_client.get(reverse("admin:dbops_restorerecord_changelist")).content.decode()
    assert 'id="empty-hint"' in html and "backup_restore --id" in html
    assert "PITR runs" in admin_client.get(reverse("admin:index")).content.decode()


def test_dashboard__staff_without_permissions_see_the_page_but_no_alert_through_it(django_user_model):
    from django.utils import timezone

    from dbops.models import Alert

    now = timezone.now()
    alert = Alert.objects.create(
        rule="backup_failed",
        severity="critical",
        message="backup #7 failed: secret detail",
        fired_at=now,
        last_seen_at=now,
    )
    from django.test import Client

    client = staff_with(django_user_model, Client(), "nobody")
    assert client.get("/admin/dbops/dashboard/").status_code == 200
    for suffix in ("change/", "history/", "delete/", ""):
        response = client.get(f"/admin/dbops/dashboard/{alert.pk}/{suffix}")
        assert response.status_code in (302, 403, 404), (suffix, response.status_code)
        assert b"secret detail" not in response.content
    assert client.get(f"/admin/dbops/alert/{alert.pk}/change/").status_code == 403  # the alert admin's own answer


@pytest.mark.parametrize(
    "query",
    ["status__regex=(", "status=fail%00ed", "started_at__year=99999999999", "q=%00", "started_at__month=13"],
)
def test_history_admin__hostile_filters_get_a_4xx_not_a_500(staff_client, query):
    BackupRecordFactory()
    response = staff_client.get(f"/admin/dbops/backuprecord/?{query}")
    assert response.status_code < 500, (query, response.status_code)
    assert response.status_code in (200, 302, 400), (query, response.status_code)


def test_download__a_failed_pruned_or_moved_backup_says_why_with_a_404(django_user_model, backup_dir):
    from django.test import Client
    from django.utils import timezone

    client = staff_with(django_user_model, Client(), "downloader", "view_backuprecord", "download_backuprecord")
    failed = BackupRecordFactory(status=BackupRecord.Status.FAILED, filename="", error="pg_dump: boom")
    pruned = BackupRecordFactory(file_deleted_at=timezone.now())
    moved = BackupRecordFactory()
    (backup_dir / moved.filename).unlink()
    present = BackupRecordFactory()
    for record, says in ((failed, "has no file"), (pruned, "pruned"), (moved, "is not in the backup storage")):
        response = client.get(f"/admin/dbops/backuprecord/{record.pk}/download/")
        assert response.status_code == 404 and says in response.content.decode(), (record, response.content)
    assert client.get(f"/admin/dbops/backuprecord/{present.pk}/download/").status_code == 200


def test_verify__an_encrypted_backup_on_a_host_without_the_key_says_why_verify_is_unavailable(admin_client, settings):
    import dataclasses

    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_encryption_identity_file=None)
    record = BackupRecordFactory(encrypted=True, filename="app-20261203-000000-1.dump.age")
    page = admin_client.get(f"/admin/dbops/backuprecord/{record.pk}/change/").content.decode()
    assert 'id="verify-unavailable"' in page and f"manage.py backup_verify --id {record.pk}" in page
    assert 'id="verify-backup"' not in page
    plain = BackupRecordFactory()
    page = admin_client.get(f"/admin/dbops/backuprecord/{plain.pk}/change/").content.decode()
    assert 'id="verify-backup"' in page and 'id="verify-unavailable"' not in page

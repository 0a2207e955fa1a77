"""factory-boy factories for dbops' models and the data tests back up."""

from __future__ import annotations

import datetime
import hashlib

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from dbops.models import BackupRecord


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1234")


class BackupRecordFactory(factory.django.DjangoModelFactory):
    """A finished, successful backup record whose file is in the backup storage (`stored=False`: no file).

    dbops checks a claimed file where it claims it (health, the newest verified backup), so a record of a
    succeeded backup comes with a stand-in file unless a test wants it missing.
    """

    class Meta:
        model = BackupRecord
        skip_postgeneration_save = True  # the hook below writes a file, not the record

    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyAttribute(lambda o: o.started_at + datetime.timedelta(seconds=3))
    duration_seconds = 3.0
    status = BackupRecord.Status.SUCCEEDED
    trigger = BackupRecord.Trigger.SCHEDULE
    database_name = "dbops"
    filename = factory.Sequence(lambda n: f"factory-{n}.dump")
    size_bytes = 1024
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(o.filename.encode()).hexdigest())
    verification = BackupRecord.Verification.PASSED

    @factory.post_generation
    def stored(record, create, extracted, **kwargs):  # noqa: N805 - factory_boy passes the object first
        if not create or extracted is False or record.status != BackupRecord.Status.SUCCEEDED:
            return
        if record.filename and not record.file_deleted_at:
            from django.core.files.base import ContentFile

            from dbops.backups.logical.storage import backup_storage

            storage = backup_storage()
            if not storage.exists(record.filename):
                storage.save(record.filename, ContentFile(b"stand-in for a dump"))

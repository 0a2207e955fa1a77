"""Backups nobody else can read: private file modes whatever the umask, and age encryption at rest."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import stat

import pyrage
import pytest
from pyrage import x25519

from dbops.backups import logical as backups
from dbops.exceptions import BackupKeyError, RestoreRefused
from dbops.models import BackupRecord, RestoreRecord
from tests.backups.conftest import content_hashes
from tests.factories import UserFactory

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("backup_dir")]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o077, 0o000])
def test_backup_files__are_private_whatever_the_umask(backup_dir, umask):
    previous = os.umask(umask)
    try:
        record = backups.take_backup()
    finally:
        os.umask(previous)
    assert mode(backup_dir) == 0o700
    assert mode(backup_dir / record.filename) == 0o600
    assert mode(backup_dir / f"{record.filename}.metadata") == 0o600


@pytest.fixture
def age_key(tmp_path, settings):
    """Encrypt backups to a new age key; yield (identity file, identity)."""
    identity = x25519.Identity.generate()
    identity_file = tmp_path / "backup-key.txt"
    identity_file.write_text(f"# created for this test\n{identity}\n")
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS,
        backup_encryption_recipients=(str(identity.to_public()),),
        backup_encryption_identity_file=identity_file,
    )
    return identity_file


def test_encrypted_backup__is_unreadable_at_rest_and_verifies_with_its_key(backup_dir, age_key):
    UserFactory.create_batch(5)
    record = backups.take_backup()
    stored = (backup_dir / record.filename).read_bytes()
    assert record.encrypted and record.filename.endswith(".dump.age")
    assert stored.startswith(b"age-encryption.org/v1") and b"PGDMP" not in stored  # pg_dump's header is sealed
    assert backups.verify_backup(record).verification == BackupRecord.Verification.PASSED


def test_encrypted_backup__a_wrong_or_missing_key_is_refused_before_anything_is_touched(
    backup_dir,
    age_key,
    settings,
):
    UserFactory.create_batch(3)
    record = backups.take_backup()
    before = content_hashes()
    age_key.write_text(f"{x25519.Identity.generate()}\n")  # another key
    with pytest.raises(BackupKeyError, match="encrypted to another key"):
        backups.verify_backup(record)
    with pytest.raises(RestoreRefused, match="encrypted to another key"):
        backups.restore_backup(record)
    refused = RestoreRecord.objects.get()
    assert (refused.status, refused.safety_backup) == (RestoreRecord.Status.REFUSED, None)
    assert BackupRecord.objects.filter(trigger=BackupRecord.Trigger.PRE_RESTORE).count() == 0
    assert content_hashes() == before

    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_encryption_identity_file=None)
    with pytest.raises(BackupKeyError, match="set DATABASE_BACKUP_ENCRYPTION_IDENTITY_FILE"):
        backups.verify_backup(record)
    record.refresh_from_db()
    assert record.verification == BackupRecord.Verification.UNVERIFIED  # a missing key proves nothing either way


SIGNING_KEY = "signing-key-for-this-test-only-0123456789"


def test_signed_backup__a_forged_dump_with_an_edited_record_is_refused(backup_dir, age_key, settings):
    """The attack: a dump of the attacker's making encrypted to the public recipient, the record edited to match."""
    settings.DBOPS = dataclasses.replace(settings.DBOPS, backup_signing_key=SIGNING_KEY)
    UserFactory.create_batch(3)
    genuine = backups.take_backup()
    metadata = json.loads((backup_dir / f"{genuine.filename}.metadata").read_text())
    assert genuine.signature and metadata["signature"] == genuine.signature
    assert backups.verify_backup(genuine).verification == BackupRecord.Verification.PASSED

    forged = b"PGDMP forged by someone who knows only the public recipient"
    sealed = io.BytesIO()
    pyrage.encrypt_io(
        io.BytesIO(forged), sealed, [x25519.Recipient.from_str(settings.DBOPS.backup_encryption_recipients[0])]
    )
    (backup_dir / genuine.filename).write_bytes(sealed.getvalue())
    BackupRecord.objects.filter(pk=genuine.pk).update(
        sha256=hashlib.sha256(sealed.getvalue()).hexdigest(), size_bytes=len(sealed.getvalue())
    )
    genuine.refresh_from_db()
    result = backups.verify_backup(genuine)
    assert result.verification == BackupRecord.Verification.FAILED
    assert "signature does not match" in result.verification_details["error"]
    with pytest.raises(RestoreRefused):
        backups.restore_backup(genuine)

    BackupRecord.objects.filter(pk=genuine.pk).update(signature="")  # the attacker drops the signature instead
    genuine.refresh_from_db()
    assert "is not signed" in backups.verify_backup(genuine).verification_details["error"]


def test_ssh_key__an_ssh_recipient_encrypts_and_its_private_key_decrypts(backup_dir, settings, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    identity_file = tmp_path / "id_ed25519"
    identity_file.write_bytes(private)
    identity_file.chmod(0o600)
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS,
        backup_encryption_recipients=(public.decode(),),
        backup_encryption_identity_file=identity_file,
    )
    UserFactory.create_batch(2)
    record = backups.take_backup()
    assert record.encrypted and backups.verify_backup(record).verification == BackupRecord.Verification.PASSED


def test_identity_file__readable_by_others_is_refused_when_strict_and_warned_about_otherwise(
    backup_dir, age_key, settings, caplog
):
    record = backups.take_backup()
    age_key.chmod(0o644)
    backups.verify_backup(record)  # development: used, and said
    assert any(getattr(r, "event", "") == "identity_file_shared" for r in caplog.records)
    settings.DBOPS = dataclasses.replace(settings.DBOPS, environment="production")
    with pytest.raises(BackupKeyError, match="can be read by other users"):
        backups.verify_backup(record)

"""Verifying a backup: its hash and size, then a restore into a scratch database with the row counts compared."""

from __future__ import annotations

import secrets
import shutil
import time
from tempfile import SpooledTemporaryFile

from dbbackup.utils import uncompress_file
from django.db import connections
from django.utils import timezone
from psycopg import sql

from dbops.backups import encryption, pgtools, signing
from dbops.backups.logical.database import count_rows, maintenance_connection
from dbops.backups.logical.storage import (
    CHUNK,
    backup_storage,
    hash_file,
    local_copy_storage,
    safe_error,
    update_description,
)
from dbops.conf import get_config, mask_url
from dbops.database.rows import one_row
from dbops.exceptions import (
    VerificationFailed,
    VerificationNotPossible,
)
from dbops.models import BackupRecord
from dbops.progress import Progress
from dbops.progress import quiet as _quiet
from dbops.signals import backup_finished


def open_verified_copy(record: BackupRecord) -> SpooledTemporaryFile:
    """Copy the stored file into a temporary file, checking size and sha256 on the way."""
    if record.status != BackupRecord.Status.SUCCEEDED or not record.filename:
        raise VerificationFailed(f"backup #{record.pk} did not succeed: there is no file to verify")
    if record.file_deleted_at:
        raise VerificationFailed(f"backup #{record.pk}: file {record.filename} is missing from the storage")
    signing.check(
        get_config().backup_signing_key,
        signing.record_description(record),
        record.signature,
        label=f"backup #{record.pk}",
    )
    return fetch_checked(
        backup_storage(),
        record.filename,
        sha256=record.sha256,
        size=record.size_bytes or 0,
        encrypted=record.encrypted,
        compressed=record.compressed,
        label=f"backup #{record.pk}",
        backup_id=record.pk,
    )


def fetch_checked(
    storage,
    name: str,
    *,
    sha256: str,
    size: int,
    encrypted: bool,
    compressed: bool,
    label: str,
    backup_id: int,
) -> SpooledTemporaryFile:
    """Copy `name` from `storage` into a temporary file, check its size and sha256, decrypt and uncompress it."""
    if not storage.exists(name):
        raise VerificationFailed(f"{label}: file {name} is missing from the storage")
    copy = SpooledTemporaryFile(max_size=16 * CHUNK)  # noqa: SIM115 - returned open to the caller
    with storage.open(name, "rb") as handle:
        shutil.copyfileobj(handle, copy, CHUNK)
    found_sha256, found_size = hash_file(copy)
    if found_size != size:
        raise VerificationFailed(f"{label}: file is {found_size} bytes, the backup wrote {size}: truncated or replaced")
    if found_sha256 != sha256:
        raise VerificationFailed(
            f"{label}: sha256 {found_sha256[:12]}… differs from the recorded {sha256[:12]}…: "
            "the file changed after the backup (corrupted or tampered with)"
        )
    if encrypted:
        copy = encryption.decrypt(copy, identity_file=get_config().backup_encryption_identity_file, backup_id=backup_id)
    if compressed:
        copy, _ = uncompress_file(copy, "dump.gz")
        copy.seek(0)
    return copy


def restore_into(alias: str, dbname: str, dump) -> None:
    """Restore `dump` into the empty database `dbname` (pg_restore, one transaction)."""
    settings = connections[alias].settings_dict
    env = pgtools.client_env(settings)
    with pgtools.restore_list(dump, env=env) as use_list:
        code, errors = pgtools.run_with_input(
            pgtools.pg_restore_argv(pgtools.tool("pg_restore"), settings, dbname=dbname, use_list=use_list),
            dump,
            env=env,
        )
    if code:
        detail = [line for line in errors.decode(errors="replace").splitlines() if line.strip()]
        raise VerificationFailed(f"pg_restore failed: {mask_url(detail[-1]) if detail else f'exit {code}'}")


def last_line(exc: BaseException) -> str:
    lines = [line for line in safe_error(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _require_createdb(conn, record: BackupRecord) -> None:
    """Refuse before anything starts when the role may not create the scratch database verification needs."""
    user, allowed = one_row(
        conn.execute("SELECT current_user, rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
    )
    if not allowed:
        raise VerificationNotPossible(
            f"backup #{record.pk} was not verified: verification restores into a scratch database and role "
            f"{user!r} lacks CREATEDB; as a superuser run ALTER ROLE {sql.Identifier(user).as_string(conn)} "
            "CREATEDB (or verify with a role that has it)"
        )


def verify_backup(record: BackupRecord, *, progress: Progress = _quiet) -> BackupRecord:
    """Prove `record` restorable: checksum, restore into a scratch database, row counts; record the result.

    Raises `VerificationNotPossible` (recorded in the details, verification left as it was) when the check
    cannot run at all, for example without CREATEDB: that says nothing about the backup itself.
    """
    details: dict = {}
    try:
        progress("checking size and sha256")
        dump = open_verified_copy(record)
        scratch = f"dbops_verify_{record.pk}_{secrets.token_hex(4)}"
        with maintenance_connection(record.database_alias) as conn:
            _require_createdb(conn, record)
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(scratch)))
        try:
            progress(f"restoring into scratch database {scratch}")
            started = time.monotonic()
            restore_into(record.database_alias, scratch, dump)
            details["restore_seconds"] = round(time.monotonic() - started, 3)
            progress("comparing row counts")
            with maintenance_connection(record.database_alias, dbname=scratch) as conn:
                restored = count_rows(conn)
        finally:
            with maintenance_connection(record.database_alias) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
        mismatches = {
            table: {"recorded": expected, "restored": restored.get(table)}
            for table, expected in record.row_counts.items()
            if restored.get(table) != expected
        }
        details["tables"] = len(restored)
        details["rows"] = sum(restored.values())
        if mismatches:
            details["mismatches"] = mismatches
            raise VerificationFailed(
                f"backup #{record.pk}: row counts differ after restore in {len(mismatches)} table(s)"
            )
    except VerificationNotPossible as exc:
        record.verification_details = {"not_run": str(exc)}
        record.save(update_fields=["verification_details"])
        raise
    except VerificationFailed as exc:
        details["error"] = str(exc)
        record.verification = BackupRecord.Verification.FAILED
    else:
        record.verification = BackupRecord.Verification.PASSED
    record.verified_at = timezone.now()
    if record.verification == BackupRecord.Verification.PASSED:
        # The storage alone must say which backup was verified: a new machine has nothing else.
        update_description(record.filename, {"verification": "passed", "verified_at": record.verified_at.isoformat()})
    _check_local_copy(record, details)
    record.verification_details = details
    record.save(update_fields=["verification", "verified_at", "verification_details", "local_copy_verified_at"])
    backup_finished.send(sender=BackupRecord, record=record)
    return record


def _check_local_copy(record: BackupRecord, details: dict) -> None:
    """Hash the local copy beside the bucket's file: it counts as verified only with the recorded sha256."""
    local = local_copy_storage()
    if not record.local_copy or record.local_copy_deleted_at or local is None:
        return
    record.local_copy_verified_at = None
    if not local.exists(record.local_copy):
        details["local_copy"] = f"{record.local_copy} is missing from {get_config().backup_dir}"
        return
    with local.open(record.local_copy, "rb") as handle:
        sha256, _size = hash_file(handle)
    if sha256 != record.sha256:
        details["local_copy"] = f"sha256 {sha256[:12]}… differs from the recorded {record.sha256[:12]}…"
        return
    details["local_copy"] = "sha256 matches"
    record.local_copy_verified_at = record.verified_at

"""Taking a backup: pg_dump in one exported snapshot with the row counts, compressed, encrypted, hashed, stored."""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from dbbackup.utils import compress_file
from django.core.files.base import ContentFile, File
from django.db import DatabaseError, connections
from django.utils import timezone

from dbops.backups import encryption, pgtools, signing
from dbops.backups.logical.database import count_rows, maintenance_connection
from dbops.backups.logical.locks import backup_lock, mark_interrupted_backups
from dbops.backups.logical.storage import (
    backup_file_name,
    backup_storage,
    discard_files,
    dump_connector,
    hash_file,
    local_copy_storage,
    logger,
    safe_error,
)
from dbops.conf import get_config
from dbops.database.rows import one_row
from dbops.exceptions import (
    BackupError,
)
from dbops.logs import log_event
from dbops.models import BackupRecord
from dbops.progress import Progress
from dbops.progress import quiet as _quiet
from dbops.signals import backup_finished


def backup_due(*, now: datetime.datetime | None = None) -> bool:
    """Tell whether the newest successful backup is older than DATABASE_BACKUP_INTERVAL_HOURS (or missing)."""
    now = now or timezone.now()
    last = BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED).order_by("-started_at").first()
    interval = datetime.timedelta(hours=get_config().backup_interval_hours)
    return last is None or now - last.started_at >= interval


def take_backup(
    *,
    trigger: str = BackupRecord.Trigger.COMMAND,
    alias: str = "default",
    compress: bool = False,
    progress: Progress = _quiet,
) -> BackupRecord:
    """Dump `alias` with pg_dump, store it with its checksum and row counts, and record the run."""
    with backup_lock(alias):
        mark_interrupted_backups()
        db_settings = connections[alias].settings_dict
        started = time.monotonic()
        record = BackupRecord.objects.create(
            started_at=timezone.now(),
            trigger=trigger,
            database_alias=alias,
            database_name=db_settings["NAME"],
            storage=type(backup_storage()).__name__,
            compressed=compress,
            encrypted=bool(get_config().backup_encryption_recipients),
        )
        stored = None
        try:
            stored = _dump_and_store(record, alias, compress=compress, progress=progress)
        except Exception as exc:
            discard_files(stored)
            error = safe_error(exc)
            try:
                record.finish(BackupRecord.Status.FAILED, error, started=started)
            except DatabaseError:
                log_event(logger, logging.ERROR, "backup_failed_unrecorded", backup=record.pk)
            backup_finished.send(sender=BackupRecord, record=record)
            raise BackupError(f"backup #{record.pk} failed: {error.splitlines()[-1] if error else ''}") from exc
        record.refresh_from_db()
        record.finish(BackupRecord.Status.SUCCEEDED, started=started)
        backup_finished.send(sender=BackupRecord, record=record)
        log_event(
            logger,
            logging.INFO,
            "backup_succeeded",
            backup=record.pk,
            bytes=record.size_bytes,
            seconds=record.duration_seconds,
        )
        return record


class UploadDeadline(BackupError):
    """The whole upload took longer than DATABASE_BACKUP_UPLOAD_DEADLINE."""


def save_within(storage, name: str, content, *, seconds: int) -> str:
    """Save `content` as `name`, or raise BackupError once `seconds` have passed (a store that crawls or hangs).

    The connect and read timeouts bound each request; this bounds the whole upload. The upload runs in a daemon
    thread: past the deadline the backup is recorded failed and its lock let go, while the thread ends on its own
    timeouts (a part that still lands is an orphan of a failed backup: prune removes it).
    """
    outcome: dict = {}

    def upload() -> None:
        try:
            outcome["name"] = storage.save(name, File(content, name=name))
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc

    worker = threading.Thread(target=upload, name="dbops-backup-upload", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise UploadDeadline(
            f"storing {name} did not finish within DATABASE_BACKUP_UPLOAD_DEADLINE={seconds} s: the store is too slow "
            "or stopped answering"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["name"]


def _dump_and_store(record: BackupRecord, alias: str, *, compress: bool, progress: Progress) -> str:
    with maintenance_connection(alias) as conn:
        version_num, version = one_row(
            conn.execute("SELECT current_setting('server_version_num')::int, current_setting('server_version')")
        )
        server_major = version_num // 10000
        dump_major = pgtools.tool_major("pg_dump")
        if dump_major < server_major:
            raise BackupError(
                f"pg_dump {dump_major} is older than the server (PostgreSQL {server_major}): "
                f"install postgresql-client-{server_major} or newer"
            )
        # One snapshot for the counts and the dump: the counts describe exactly what the file holds.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = one_row(conn.execute("SELECT pg_export_snapshot()"))[0]
        connector = dump_connector(alias)
        connector.dump_suffix = f"--snapshot={snapshot}"
        progress("dumping (pg_dump --format=custom) while counting rows in the same snapshot")
        # pg_dump works in its own process: count rows meanwhile instead of before it.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbops-pg-dump") as executor:
            pending_dump = executor.submit(connector.create_dump)
            counts = count_rows(conn)
            dump = pending_dump.result()
        conn.execute("COMMIT")
        progress(f"dumped {len(counts)} tables, {sum(counts.values())} rows")
    extension = "dump"
    if compress:
        progress("compressing")
        dump, _ = compress_file(dump, "dump")
        extension = "dump.gz"
    if record.encrypted:
        recipients = get_config().backup_encryption_recipients
        progress(f"encrypting to {len(recipients)} age recipient(s)")
        dump = encryption.encrypt(dump, recipients)
        extension += encryption.SUFFIX
    progress("hashing")
    sha256, size = hash_file(dump)
    name = backup_file_name(record, extension)
    storage, local = backup_storage(), local_copy_storage()
    kept = ""
    try:
        if local is not None:  # first: a local write is cheap, and a failed upload then removes it again
            progress(f"keeping a local copy in {get_config().backup_dir}")
            kept = local.save(name, File(dump, name=name))
        progress(f"storing {size} bytes as {name}")
        stored = save_within(storage, name, dump, seconds=get_config().backup_upload_deadline)
    except Exception as exc:
        if not isinstance(exc, UploadDeadline):  # a store that stopped answering would hold the cleanup too
            discard_files(name)  # a full disk leaves the part written so far under the name
        if local is not None:
            discard_files(kept or name, local)
        raise
    metadata = {
        "engine": connections[alias].settings_dict["ENGINE"],
        "connector": f"{type(connector).__module__}.{type(connector).__name__}",
        "database": record.database_name,
        "server_version": version,
        "sha256": sha256,
        "size_bytes": size,
        "compressed": compress,
        "encrypted": record.encrypted,
        "row_counts": counts,
        "started_at": record.started_at.isoformat(),
        "stored_at": timezone.now().isoformat(),
    }
    signature = ""
    if get_config().backup_signing_key:
        description = signing.describe(
            name=stored,
            database=record.database_name,
            started_at=record.started_at.isoformat(),
            sha256=sha256,
            size_bytes=size,
            row_counts=counts,
            encrypted=record.encrypted,
            compressed=compress,
        )
        signature = metadata["signature"] = signing.sign(get_config().backup_signing_key, description)
    described = json.dumps(metadata, indent=2, sort_keys=True).encode()
    try:
        storage.save(f"{stored}.metadata", ContentFile(described))
        if local is not None:
            local.save(f"{kept}.metadata", ContentFile(described))
        BackupRecord.objects.filter(pk=record.pk).update(
            filename=stored,
            local_copy=kept,
            size_bytes=size,
            sha256=sha256,
            row_counts=counts,
            server_version=version,
            signature=signature,
        )
    except Exception:
        discard_files(stored)
        discard_files(kept, local)
        raise
    return stored

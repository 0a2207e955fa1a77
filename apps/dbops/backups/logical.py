"""Backups through django-dbbackup's PostgreSQL connector (pg_dump --format=custom), made verifiable.

What dbops adds: a `BackupRecord` per run; the sha256 and per-table row counts of the dump, taken in the very
snapshot pg_dump dumps (`pg_export_snapshot` + `pg_dump --snapshot`); verification by restoring into a scratch
database; a restore that verifies first and takes a safety backup before touching live data; age-based
retention that keeps the newest verified backups; a PostgreSQL advisory lock so two backups never overlap.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile

from dbbackup.db.base import get_connector
from dbbackup.utils import compress_file, uncompress_file
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, storages
from django.db import DatabaseError, connections, transaction
from django.utils import timezone
from psycopg import sql

from dbops.backups import encryption
from dbops.conf import DBOPS_POSTGRES_ENGINE, get_config, mask_url
from dbops.database.pool import direct_connection
from dbops.exceptions import (
    BackupError,
    BackupInProgress,
    BackupKeyError,
    RestoreRefused,
    VerificationFailed,
    VerificationNotPossible,
)
from dbops.models import BackupRecord, MigrationRun, RestoreRecord
from dbops.signals import backup_finished

logger = logging.getLogger("dbops.backups")


def _undo_dbbackup_debug_logger() -> None:
    """Give `dbbackup.command` back the level LOGGING sets (default: inherit), not the DEBUG its import forces.

    Otherwise every dump prints its full pg_dump command line whatever the site's LOGGING says.
    """
    from django.conf import settings

    configured = ((getattr(settings, "LOGGING", None) or {}).get("loggers") or {}).get("dbbackup.command") or {}
    logging.getLogger("dbbackup.command").setLevel(configured.get("level", logging.NOTSET))


_undo_dbbackup_debug_logger()

# pg_advisory_lock key shared by every dbops backup of a database ("dbops" in ASCII, then 1); restores hold 4.
BACKUP_LOCK_KEY = 0x64626F707301
RESTORE_LOCK_KEY = 0x64626F707304
# The names dbops gives backup files: <database>-<YYYYmmdd-HHMMSS>-<record id>.dump[.gz][.age]
BACKUP_FILE_NAME = re.compile(r"^.+-\d{8}-\d{6}-(?P<id>\d+)\.dump(?:\.gz)?(?:\.age)?$")
STORAGE_ALIAS = "dbbackup"
PG_DUMP_CONNECTOR = "dbbackup.db.postgresql.PgDumpBinaryConnector"
CHUNK = 1024 * 1024

Progress = Callable[[str], None]


def _quiet(stage: str) -> None:
    """Progress sink that prints nothing."""


def dump_connector(alias: str):
    """Return django-dbbackup's connector for `alias`; pg_dump's for dbops' engine.

    django-dbbackup maps engines to connectors by name and falls back to dumpdata for names it does not know.
    """
    engine = connections[alias].settings_dict["ENGINE"]
    return get_connector(alias, connector_path=PG_DUMP_CONNECTOR if engine == DBOPS_POSTGRES_ENGINE else None)


def backup_storage():
    return storages[STORAGE_ALIAS]


def local_copy_storage() -> FileSystemStorage | None:
    """Return DATABASE_BACKUP_DIR's storage when each backup also keeps a local copy beside the bucket, else None."""
    config = get_config()
    if config.backup_s3 is None or not config.backup_local_copy_days:
        return None
    return FileSystemStorage(**config.local_backup_storage()["OPTIONS"])


@contextlib.contextmanager
def _maintenance_connection(alias: str, dbname: str | None = None):
    """Yield an autocommit connection outside the pool with no statement timeout (long maintenance work)."""
    with direct_connection(alias, timeout=10, statement_timeout=0, dbname=dbname) as conn:
        yield conn


def user_tables(conn) -> list[tuple[str, str]]:
    """Return (schema, table) of every ordinary or partitioned table outside the system schemas."""
    return conn.execute(
        """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
        ORDER BY 1, 2
        """
    ).fetchall()


def count_rows(conn) -> dict[str, int]:
    """Count the rows of every user table, keyed "schema.table"."""
    counts = {}
    for schema, table in user_tables(conn):
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
        counts[f"{schema}.{table}"] = conn.execute(query).fetchone()[0]
    return counts


def _tool_major(tool: str) -> int:
    path = shutil.which(tool)
    if path is None:
        raise BackupError(f"{tool} not found: install the PostgreSQL client tools (Debian: postgresql-client).")
    out = subprocess.run(  # noqa: S603 - a resolved tool path and a fixed argument
        [path, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if not match:
        raise BackupError(f"cannot read the version of {path}: {out.strip()!r}")
    return int(match.group(1))


def _hash_file(handle) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    handle.seek(0)
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(0)
    return digest.hexdigest(), size


def _delete_files(name: str | None, storage=None) -> None:
    if not name:
        return
    storage = storage or backup_storage()
    for path in (name, f"{name}.metadata"):
        with contextlib.suppress(Exception):
            if storage.exists(path):
                storage.delete(path)


def _safe_error(exc: BaseException) -> str:
    return mask_url(str(exc)).strip()[-4000:] or type(exc).__name__


def mark_interrupted_backups() -> int:
    """Mark `running` records failed: called while holding the backup lock, so none of them is running."""
    return BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING).update(
        status=BackupRecord.Status.FAILED,
        finished_at=timezone.now(),
        error="interrupted: the backup process died or lost the database before recording its end",
    )


def mark_interrupted_restores() -> int:
    """Mark `running` restore records failed: called while holding the restore lock, so none of them is running."""
    return RestoreRecord.objects.filter(status=RestoreRecord.Status.RUNNING).update(
        status=RestoreRecord.Status.FAILED,
        finished_at=timezone.now(),
        error="interrupted: the restore process died or lost the database before recording its end "
        "(its safety backup, if any, is listed in the record)",
    )


@contextlib.contextmanager
def _advisory_lock(alias: str, key: int, busy: str) -> Iterator[None]:
    with _maintenance_connection(alias) as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]:
            raise BackupInProgress(busy)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", [key])


def backup_lock(alias: str):
    """Hold the database-wide backup advisory lock, or raise BackupInProgress."""
    return _advisory_lock(
        alias,
        BACKUP_LOCK_KEY,
        "another backup of this database is running (PostgreSQL advisory lock held): try again later",
    )


def restore_lock(alias: str):
    """Hold the database-wide restore advisory lock, or raise BackupInProgress."""
    return _advisory_lock(alias, RESTORE_LOCK_KEY, "another restore of this database is running: try again later")


def reap_interrupted(alias: str = "default") -> None:
    """Finish the records of backups and restores whose process died (`kill -9`, a lost host).

    A running backup or restore holds its advisory lock for as long as its session lives; a `running` record
    whose lock is free has nobody left to finish it.
    """
    for lock, mark in ((backup_lock, mark_interrupted_backups), (restore_lock, mark_interrupted_restores)):
        with contextlib.suppress(BackupInProgress), lock(alias):
            mark()


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
            _delete_files(stored)
            error = _safe_error(exc)
            try:
                BackupRecord.objects.filter(pk=record.pk).update(
                    status=BackupRecord.Status.FAILED,
                    finished_at=timezone.now(),
                    duration_seconds=time.monotonic() - started,
                    error=error,
                )
            except DatabaseError:
                logger.error('{"event": "backup_failed_unrecorded", "backup": %s}', record.pk)
            backup_finished.send(sender=BackupRecord, record=record)
            raise BackupError(f"backup #{record.pk} failed: {error.splitlines()[-1] if error else ''}") from exc
        record.refresh_from_db()
        record.duration_seconds = time.monotonic() - started
        record.finished_at = timezone.now()
        record.status = BackupRecord.Status.SUCCEEDED
        record.save(update_fields=["duration_seconds", "finished_at", "status"])
        backup_finished.send(sender=BackupRecord, record=record)
        logger.info(
            '{"event": "backup_succeeded", "backup": %s, "bytes": %s, "seconds": %.2f}',
            record.pk,
            record.size_bytes,
            record.duration_seconds,
        )
        return record


def _dump_and_store(record: BackupRecord, alias: str, *, compress: bool, progress: Progress) -> str:
    with _maintenance_connection(alias) as conn:
        version_num, version = conn.execute(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version')"
        ).fetchone()
        server_major = version_num // 10000
        dump_major = _tool_major("pg_dump")
        if dump_major < server_major:
            raise BackupError(
                f"pg_dump {dump_major} is older than the server (PostgreSQL {server_major}): "
                f"install postgresql-client-{server_major} or newer"
            )
        # One snapshot for the counts and the dump: the counts describe exactly what the file holds.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
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
    sha256, size = _hash_file(dump)
    name = f"{record.database_name}-{record.started_at:%Y%m%d-%H%M%S}-{record.pk}.{extension}"
    storage, local = backup_storage(), local_copy_storage()
    kept = ""
    try:
        if local is not None:  # first: a local write is cheap, and a failed upload then removes it again
            progress(f"keeping a local copy in {get_config().backup_dir}")
            kept = local.save(name, File(dump, name=name))
        progress(f"storing {size} bytes as {name}")
        stored = storage.save(name, File(dump, name=name))
    except Exception:
        _delete_files(name)  # a full disk leaves the part written so far under the name
        if local is not None:
            _delete_files(kept or name, local)
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
    }
    described = json.dumps(metadata, indent=2, sort_keys=True).encode()
    try:
        storage.save(f"{stored}.metadata", ContentFile(described))
        if local is not None:
            local.save(f"{kept}.metadata", ContentFile(described))
        BackupRecord.objects.filter(pk=record.pk).update(
            filename=stored, local_copy=kept, size_bytes=size, sha256=sha256, row_counts=counts, server_version=version
        )
    except Exception:
        _delete_files(stored)
        _delete_files(kept, local)
        raise
    return stored


def _open_verified_copy(record: BackupRecord) -> SpooledTemporaryFile:
    """Copy the stored file into a temporary file, checking size and sha256 on the way."""
    if record.status != BackupRecord.Status.SUCCEEDED or not record.filename:
        raise VerificationFailed(f"backup #{record.pk} did not succeed: there is no file to verify")
    storage = backup_storage()
    if record.file_deleted_at or not storage.exists(record.filename):
        raise VerificationFailed(f"backup #{record.pk}: file {record.filename} is missing from the storage")
    copy = SpooledTemporaryFile(max_size=16 * CHUNK)  # noqa: SIM115 - returned open to the caller
    with storage.open(record.filename, "rb") as handle:
        shutil.copyfileobj(handle, copy, CHUNK)
    sha256, size = _hash_file(copy)
    if size != record.size_bytes:
        raise VerificationFailed(
            f"backup #{record.pk}: file is {size} bytes, the backup wrote {record.size_bytes}: truncated or replaced"
        )
    if sha256 != record.sha256:
        raise VerificationFailed(
            f"backup #{record.pk}: sha256 {sha256[:12]}… differs from the recorded {record.sha256[:12]}…: "
            "the file changed after the backup (corrupted or tampered with)"
        )
    if record.encrypted:
        copy = encryption.decrypt(copy, identity_file=get_config().backup_encryption_identity_file, backup_id=record.pk)
    if record.compressed:
        copy, _ = uncompress_file(copy, "dump.gz")
        copy.seek(0)
    return copy


def _restore_into(alias: str, dbname: str, dump) -> None:
    """Restore `dump` into the empty database `dbname` with django-dbbackup's connector (pg_restore)."""
    connector = dump_connector(alias)
    connector._settings = {**connector.settings, "NAME": dbname}
    dump.seek(0)
    try:
        connector.restore_dump(dump)
    except Exception as exc:
        raise VerificationFailed(f"pg_restore failed: {_last_line(exc)}") from None


def _last_line(exc: BaseException) -> str:
    lines = [line for line in _safe_error(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _restore_exactly(alias: str, dump, *, drop: list[tuple[str, str]]) -> None:
    """Replace the live database's contents with `dump` in ONE transaction, dropping the tables in `drop` first.

    pg_restore writes the archive as SQL (`--clean --if-exists`, as the connector restores) and psql runs it after
    the DROPs with `--single-transaction`: tables created since the backup go too (a foreign key from one of
    them would otherwise stop pg_restore dropping the table it references), and any failure leaves the database
    as it was.
    """
    from dbbackup.db.postgresql import parse_postgres_settings

    connector = dump_connector(alias)
    target, env = parse_postgres_settings(connector)
    env = {**os.environ, **connector.restore_env, **env}
    prologue = "".join(
        sql.SQL("DROP TABLE IF EXISTS {} CASCADE;\n").format(sql.Identifier(schema, table)).as_string(None)
        for schema, table in drop
    )
    dump.seek(0)
    psql = subprocess.Popen(  # noqa: S603 - resolved tools, arguments from the connection settings
        [_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", *shlex.split(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    restore = subprocess.Popen(  # noqa: S603
        [_tool("pg_restore"), "--clean", "--if-exists", "--file=-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dbops-restore") as executor:
        feed = executor.submit(_copy_and_close, dump, restore.stdin)
        restore_errors = executor.submit(restore.stderr.read)
        try:
            psql.stdin.write(prologue.encode())
            shutil.copyfileobj(restore.stdout, psql.stdin, CHUNK)
            psql.stdin.close()
        except BrokenPipeError:
            pass  # psql stopped at an error: its stderr says which
        feed.result()
        restore.wait()
        psql_errors = psql.stderr.read()
        psql.wait()
        restore_stderr = restore_errors.result()
    if restore.returncode or psql.returncode:
        detail = (psql_errors or restore_stderr).decode(errors="replace").strip().splitlines()
        raise VerificationFailed(f"pg_restore failed: {mask_url(detail[-1]) if detail else 'exit status'}")


def _copy_and_close(source, sink) -> None:
    try:
        shutil.copyfileobj(source, sink, CHUNK)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools (Debian: postgresql-client).")
    return path


def _require_createdb(conn, record: BackupRecord) -> None:
    """Refuse before anything starts when the role may not create the scratch database verification needs."""
    user, allowed = conn.execute(
        "SELECT current_user, rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
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
        dump = _open_verified_copy(record)
        scratch = f"dbops_verify_{record.pk}_{secrets.token_hex(4)}"
        with _maintenance_connection(record.database_alias) as conn:
            _require_createdb(conn, record)
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(scratch)))
        try:
            progress(f"restoring into scratch database {scratch}")
            started = time.monotonic()
            _restore_into(record.database_alias, scratch, dump)
            details["restore_seconds"] = round(time.monotonic() - started, 3)
            progress("comparing row counts")
            with _maintenance_connection(record.database_alias, dbname=scratch) as conn:
                restored = count_rows(conn)
        finally:
            with _maintenance_connection(record.database_alias) as conn:
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
        sha256, _size = _hash_file(handle)
    if sha256 != record.sha256:
        details["local_copy"] = f"sha256 {sha256[:12]}… differs from the recorded {record.sha256[:12]}…"
        return
    details["local_copy"] = "sha256 matches"
    record.local_copy_verified_at = record.verified_at


# dbops' own history, parents first: a restore puts the present's history back, not the backup's.
HISTORY_MODELS = (BackupRecord, RestoreRecord, MigrationRun)


def _history_snapshot() -> list[list]:
    return [list(model.objects.order_by("pk")) for model in HISTORY_MODELS]


def _put_back_history(snapshot: list[list]) -> None:
    """After a restore: the dbops history is the present's, not the backup's."""
    from django.core.management.color import no_style

    with transaction.atomic():
        for model in reversed(HISTORY_MODELS):
            model.objects.all().delete()
        for model, rows in zip(HISTORY_MODELS, snapshot, strict=True):
            model.objects.bulk_create(rows)
        connection = connections["default"]
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), list(HISTORY_MODELS)):
                cursor.execute(statement)


def _tables_not_in(record: BackupRecord) -> list[tuple[str, str]]:
    """Return the live tables the backup does not hold (created since), except dbops' own history tables."""
    kept = {f"public.{model._meta.db_table}" for model in HISTORY_MODELS}
    with _maintenance_connection(record.database_alias) as conn:
        live = user_tables(conn)
    return [(schema, table) for schema, table in live if f"{schema}.{table}" not in {*record.row_counts, *kept}]


def restore_backup(record: BackupRecord, *, requested_by: str = "", progress: Progress = _quiet) -> RestoreRecord:
    """Restore `record` into the live database exactly: verify, take a safety backup, restore, keep dbops' history.

    Afterwards the application's tables and rows are the backup's: tables created since are dropped in the
    same transaction. Every record ends in a final state, whatever fails.
    """
    alias = record.database_alias
    restore = RestoreRecord.objects.create(
        backup=record,
        started_at=timezone.now(),
        requested_by=requested_by,
        database_name=connections[alias].settings_dict["NAME"],
    )

    def finish(status: str, error: str) -> None:
        with contextlib.suppress(DatabaseError):
            RestoreRecord.objects.filter(pk=restore.pk).update(status=status, error=error, finished_at=timezone.now())

    try:
        with restore_lock(alias):
            return _restore(record, restore, progress)
    except RestoreRefused as exc:
        finish(RestoreRecord.Status.REFUSED, str(exc))
        raise
    except BackupInProgress as exc:
        finish(RestoreRecord.Status.REFUSED, f"refused: {exc}")
        raise RestoreRefused(f"refused: {exc}") from None
    except BackupError as exc:
        finish(RestoreRecord.Status.FAILED, str(exc))
        raise
    except Exception as exc:
        error = f"restore failed: {_last_line(exc)}"
        finish(RestoreRecord.Status.FAILED, error)
        raise BackupError(error) from exc


def _restore(record: BackupRecord, restore: RestoreRecord, progress: Progress) -> RestoreRecord:
    alias = record.database_alias
    progress("verifying the backup before touching the live database")
    try:
        verify_backup(record, progress=progress)
    except (BackupKeyError, VerificationNotPossible) as exc:
        raise RestoreRefused(f"refused: {exc}") from None
    if record.verification != BackupRecord.Verification.PASSED:
        raise RestoreRefused(f"refused: {record.verification_details.get('error', 'verification failed')}")
    progress("taking the safety backup of the current database")
    try:
        safety = take_backup(trigger=BackupRecord.Trigger.PRE_RESTORE, alias=alias, progress=progress)
    except BackupError as exc:
        raise RestoreRefused(f"refused: the safety backup failed ({exc})") from None
    restore.safety_backup = safety
    restore.save(update_fields=["safety_backup"])

    dump = _open_verified_copy(record)
    history = _history_snapshot()
    extra = _tables_not_in(record)
    connections[alias].close()
    progress(
        f"restoring backup #{record.pk} into {restore.database_name}"
        + (f", dropping {len(extra)} table(s) created since it was taken" if extra else "")
    )
    try:
        _restore_exactly(alias, dump, drop=extra)
    except VerificationFailed as exc:
        raise BackupError(f"restore failed, live database unchanged: {exc}") from None
    _put_back_history(history)
    RestoreRecord.objects.filter(pk=restore.pk).update(
        status=RestoreRecord.Status.SUCCEEDED, finished_at=timezone.now()
    )
    restore.refresh_from_db()
    restore.dropped_tables = [f"{schema}.{table}" for schema, table in extra]
    return restore


def prune_backups(*, dry_run: bool = False, now: datetime.datetime | None = None) -> list[BackupRecord]:
    """Delete backup files older than the retention, always keeping the newest verified successful ones."""
    config = get_config()
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=config.backup_retention_days)
    with_files = BackupRecord.objects.filter(file_deleted_at__isnull=True).exclude(filename="")
    keep = set(
        with_files.filter(status=BackupRecord.Status.SUCCEEDED, verification=BackupRecord.Verification.PASSED)
        .order_by("-started_at")
        .values_list("pk", flat=True)[: config.backup_keep_verified]
    )
    doomed = [r for r in with_files.filter(started_at__lt=cutoff).order_by("started_at") if r.pk not in keep]
    if not dry_run:
        for record in doomed:
            _delete_files(record.filename)
            record.file_deleted_at = now
            record.save(update_fields=["file_deleted_at"])
    return doomed


def prune_local_copies(*, dry_run: bool = False, now: datetime.datetime | None = None) -> list[BackupRecord]:
    """Delete local copies older than DATABASE_BACKUP_LOCAL_COPY_DAYS, keeping the newest verified one."""
    local = local_copy_storage()
    if local is None:
        return []
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=get_config().backup_local_copy_days)
    held = BackupRecord.objects.filter(local_copy_deleted_at__isnull=True).exclude(local_copy="")
    newest_verified = (
        held.filter(verification=BackupRecord.Verification.PASSED, local_copy_verified_at__isnull=False)
        .order_by("-started_at")
        .values_list("pk", flat=True)
        .first()
    )
    doomed = [r for r in held.filter(started_at__lt=cutoff).order_by("started_at") if r.pk != newest_verified]
    if not dry_run:
        for record in doomed:
            _delete_files(record.local_copy, local)
            record.local_copy_deleted_at = now
            record.save(update_fields=["local_copy_deleted_at"])
    return doomed


def _orphans_in(storage, held_field: str) -> list[str]:
    try:
        _, files = storage.listdir("")
    except (OSError, NotImplementedError):
        return []
    held = set(BackupRecord.objects.exclude(**{held_field: ""}).values_list(held_field, flat=True))
    running = set(BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING).values_list("pk", flat=True))
    orphans = []
    for name in sorted(files):
        dump = name.removesuffix(".metadata")
        match = BACKUP_FILE_NAME.match(dump)
        if match and dump not in held and int(match["id"]) not in running:
            orphans.append(name)
    return orphans


def orphan_files() -> list[str]:
    """Return backup-named files that no record holds: what a backup that died while writing left.

    Files of a backup still running are not orphans; local copies beside a bucket are named "local:<file>".
    """
    orphans = _orphans_in(backup_storage(), "filename")
    local = local_copy_storage()
    if local is not None:
        orphans += [f"local:{name}" for name in _orphans_in(local, "local_copy")]
    return orphans


def prune_orphans(*, dry_run: bool = False) -> list[str]:
    """Delete the files `orphan_files` names (after finishing the records of backups that died); return them."""
    reap_interrupted()
    orphans = orphan_files()
    if not dry_run:
        storage, local = backup_storage(), local_copy_storage()
        for name in orphans:
            where, path = (local, name.removeprefix("local:")) if name.startswith("local:") else (storage, name)
            with contextlib.suppress(FileNotFoundError):
                where.delete(path)
    return orphans


def backup_summary(record: BackupRecord, *, now: datetime.datetime | None = None) -> dict:
    """Describe a backup for reports, commands and the dashboard."""
    now = now or timezone.now()
    return {
        "id": record.pk,
        "started_at": record.started_at.isoformat(),
        "age_hours": round((now - record.started_at).total_seconds() / 3600, 2),
        "status": record.status,
        "trigger": record.trigger,
        "database": record.database_name,
        "file": record.filename or None,
        "file_deleted": record.file_deleted_at is not None,
        "size_bytes": record.size_bytes,
        "sha256": record.sha256 or None,
        "duration_seconds": round(record.duration_seconds, 3) if record.duration_seconds is not None else None,
        "rows": sum(record.row_counts.values()) if record.row_counts else None,
        "verification": record.verification,
        "verified_at": record.verified_at.isoformat() if record.verified_at else None,
        "local_copy": (record.local_copy or None) if not record.local_copy_deleted_at else None,
        "error": record.error or None,
    }


LOCATION_NAMES = {"remote": "in the bucket", "local": "on local disk"}
# Per kind of copy (the main file, or the local copy kept beside a bucket): when it is there, when it is verified.
_PRESENT = {
    "main": "filename <> '' AND file_deleted_at IS NULL",
    "local copy": "local_copy <> '' AND local_copy_deleted_at IS NULL",
}
_VERIFIED = {
    "main": "verification = 'passed'",
    "local copy": "verification = 'passed' AND local_copy_verified_at IS NOT NULL",
}


def newest_verified_by_location(cursor, *, now: datetime.datetime) -> dict[str, dict]:
    """Return, per location ("remote": the bucket, "local": DATABASE_BACKUP_DIR), its newest verified backup.

    Each entry: id, started_at and age_hours of the newest verified backup whose copy is still there (None for
    all three when there is none), and oldest_unverified_hours, the age of the oldest successful backup there
    when none is verified. `cursor` is any DB-API cursor (a probe connection's in health, the ORM's elsewhere).
    """
    locations = get_config().backup_locations()
    table = BackupRecord._meta.db_table
    report = {}
    for location in locations:
        copy = "local copy" if location == "local" and "remote" in locations else "main"
        present = f"status = 'succeeded' AND {_PRESENT[copy]}"
        cursor.execute(
            f"SELECT id, started_at FROM {table} WHERE {present} AND {_VERIFIED[copy]} "  # noqa: S608
            "ORDER BY started_at DESC LIMIT 1"
        )
        newest = cursor.fetchone()
        entry = {"id": None, "started_at": None, "age_hours": None, "oldest_unverified_hours": None}
        if newest is not None:
            entry.update(
                id=newest[0],
                started_at=newest[1].isoformat(),
                age_hours=round((now - newest[1]).total_seconds() / 3600, 2),
            )
        else:
            cursor.execute(f"SELECT min(started_at) FROM {table} WHERE {present}")  # noqa: S608
            oldest = cursor.fetchone()[0]
            if oldest is not None:
                entry["oldest_unverified_hours"] = round((now - oldest).total_seconds() / 3600, 2)
        report[location] = entry
    return report


def _newest_verified(now: datetime.datetime) -> dict[str, dict]:
    with connections["default"].cursor() as cursor:
        return newest_verified_by_location(cursor, now=now)


def backup_status(*, limit: int = 10) -> dict:
    """Report recent backups and freshness against DATABASE_BACKUP_INTERVAL_HOURS."""
    config = get_config()
    now = timezone.now()
    reap_interrupted()
    recent = list(BackupRecord.objects.order_by("-started_at")[:limit])
    last_success = BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED).order_by("-started_at").first()
    return {
        "enabled": config.backup_enabled,
        "interval_hours": config.backup_interval_hours,
        "retention_days": config.backup_retention_days,
        "due": backup_due(now=now),
        "last_success": backup_summary(last_success, now=now) if last_success else None,
        "newest_verified": _newest_verified(now),
        "recent": [backup_summary(r, now=now) for r in recent],
    }

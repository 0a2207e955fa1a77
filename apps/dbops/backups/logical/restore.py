"""Restoring a backup into the live database exactly, after a safety backup, keeping dbops' own history."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, connections
from django.utils import timezone
from psycopg import sql

from dbops.backups import pgtools
from dbops.backups.logical import history
from dbops.backups.logical.database import maintenance_connection, user_tables
from dbops.backups.logical.locks import restore_lock
from dbops.backups.logical.storage import CHUNK
from dbops.backups.logical.take import take_backup
from dbops.backups.logical.verify import last_line, open_verified_copy, verify_backup
from dbops.conf import mask_url
from dbops.exceptions import (
    BackupError,
    BackupInProgress,
    BackupKeyError,
    RestoreRefused,
    VerificationFailed,
    VerificationNotPossible,
)
from dbops.models import BackupRecord, RestoreRecord
from dbops.progress import Progress
from dbops.progress import quiet as _quiet


def _restore_exactly(alias: str, dump, *, drop: list[tuple[str, str]]) -> None:
    """Replace the live database's contents with `dump` in ONE transaction, dropping the tables in `drop` first.

    pg_restore writes the archive as SQL (`--clean --if-exists`, as the connector restores) and psql runs it after
    the DROPs with `--single-transaction`: tables created since the backup go too (a foreign key from one of
    them would otherwise stop pg_restore dropping the table it references), and any failure leaves the database
    as it was.
    """
    settings = connections[alias].settings_dict
    env = pgtools.client_env(settings)
    prologue = "".join(
        sql.SQL("DROP TABLE IF EXISTS {} CASCADE;\n").format(sql.Identifier(schema, table)).as_string(None)
        for schema, table in drop
    )
    with pgtools.restore_list(dump, env=env) as use_list:
        _run_restore(settings, env, prologue, dump, use_list)


def _run_restore(settings, env: dict[str, str], prologue: str, dump, use_list: str) -> None:
    dump.seek(0)
    psql = subprocess.Popen(  # noqa: S603 - resolved tools, arguments from the connection settings
        pgtools.psql_script_argv(pgtools.tool("psql"), settings),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    restore = subprocess.Popen(  # noqa: S603
        pgtools.pg_restore_to_sql_argv(pgtools.tool("pg_restore"), use_list=use_list),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    # Popen(stdin=PIPE, stdout=PIPE, stderr=PIPE) gives every stream: tell the type checker so.
    assert psql.stdin and psql.stderr and restore.stdin and restore.stdout and restore.stderr  # noqa: S101
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dbops-restore") as executor:
        feed = executor.submit(pgtools.copy_and_close, dump, restore.stdin)
        restore_errors = executor.submit(restore.stderr.read)
        try:
            psql.stdin.write(prologue.encode())
            shutil.copyfileobj(restore.stdout, psql.stdin, CHUNK)
            psql.stdin.close()
        except BrokenPipeError:
            pass  # psql stopped at an error: its stderr says which
        finally:
            # Nobody reads pg_restore's output any more: closing our end ends it (EPIPE) instead of leaving it
            # blocked on a full pipe, and this restore waiting for it for ever.
            restore.stdout.close()
        feed.result()
        restore.wait()
        psql_errors = psql.stderr.read()
        psql.wait()
        restore_stderr = restore_errors.result()
    if restore.returncode or psql.returncode:
        detail = (psql_errors or restore_stderr).decode(errors="replace").strip().splitlines()
        raise VerificationFailed(f"pg_restore failed: {mask_url(detail[-1]) if detail else 'exit status'}")


def _tables_not_in(record: BackupRecord) -> list[tuple[str, str]]:
    """Return the live tables the backup does not hold (created since), except dbops' own history tables."""
    kept = history.kept_tables()
    with maintenance_connection(record.database_alias) as conn:
        live = user_tables(conn)
    return [(schema, table) for schema, table in live if f"{schema}.{table}" not in {*record.row_counts, *kept}]


def restore_backup(record: BackupRecord, *, requested_by: str = "", progress: Progress = _quiet) -> RestoreRecord:
    """Restore `record` into the live database exactly: verify, take a safety backup, restore, keep dbops' history.

    Afterwards the application's tables and rows are the backup's: tables created since are dropped in the
    same transaction. Every record ends in a final state, whatever fails.
    """
    alias = record.database_alias
    restore = RestoreRecord._default_manager.create(
        backup=record,
        started_at=timezone.now(),
        requested_by=requested_by,
        database_name=connections[alias].settings_dict["NAME"],
    )

    def finish(status: str, error: str) -> None:
        with contextlib.suppress(DatabaseError):
            restore.finish(status, error)

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
        error = f"restore failed: {last_line(exc)}"
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

    dump = open_verified_copy(record)
    saved = history.snapshot()
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
    history.put_back(saved)
    restore.finish(RestoreRecord.Status.SUCCEEDED)
    restore.refresh_from_db()
    restore.dropped_tables = [f"{schema}.{table}" for schema, table in extra]  # type: ignore[attr-defined]  # shown once
    return restore

"""What a restore keeps of the present, and what it changes: said before it runs, kept after it ran.

A restore replaces the live database with the backup's contents. dbops' own history (backups, restores,
migration runs), its alerts and the admin log entries of dbops' actions describe the present, not the backup:
they are snapshotted before and put back after, so the audit trail survives the restore it records. Everything
else goes back to the backup: `restore_consequences()` says what that means for the people using the site
(accounts, sessions, the schema) on the confirmation page.
"""

from __future__ import annotations

import dataclasses

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connections, models, transaction
from psycopg import sql

from dbops.backups.logical.database import maintenance_connection
from dbops.models import Alert, BackupRecord, MigrationRun, RestoreRecord

# dbops' own history and alerts, parents first: a restore puts the present's back, not the backup's.
KEPT_MODELS: tuple[type[models.Model], ...] = (BackupRecord, RestoreRecord, MigrationRun, Alert)


@dataclasses.dataclass
class HistorySnapshot:
    rows: list[list[models.Model]]
    admin_log: list[LogEntry]  # entries about dbops' objects (verify, restore, acknowledge): the audit trail


def kept_tables() -> set[str]:
    return {f"public.{model._meta.db_table}" for model in KEPT_MODELS}


def snapshot() -> HistorySnapshot:
    return HistorySnapshot(
        rows=[list(model._default_manager.order_by("pk")) for model in KEPT_MODELS],
        admin_log=list(LogEntry.objects.filter(content_type__app_label="dbops").order_by("pk")),
    )


def put_back(saved: HistorySnapshot) -> int:
    """After a restore: dbops' history, alerts and admin log are the present's. Return log entries not kept.

    An admin log entry needs its user: one whose account the backup does not hold cannot be put back.
    """
    from django.core.management.color import no_style

    with transaction.atomic():
        for model in reversed(KEPT_MODELS):
            model._default_manager.all().delete()
        for model, rows in zip(KEPT_MODELS, saved.rows, strict=True):
            model._default_manager.bulk_create(rows)
        LogEntry.objects.filter(content_type__app_label="dbops").delete()
        users = set(get_user_model()._default_manager.values_list("pk", flat=True))
        kept = [entry for entry in saved.admin_log if entry.user_id in users]
        LogEntry.objects.bulk_create(kept)
        connection = connections["default"]
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), [*KEPT_MODELS, LogEntry]):
                cursor.execute(statement)
    return len(saved.admin_log) - len(kept)


def _count(conn, table: str) -> int | None:
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.{table}"]).fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))).fetchone()
    return int(row[0]) if row else None


def restore_consequences(record: BackupRecord) -> list[str]:
    """Say what restoring `record` changes for the site's people and schema, compared with the live database."""
    then = record.row_counts or {}
    user_table = get_user_model()._meta.db_table
    with maintenance_connection(record.database_alias) as conn:
        now = {table: _count(conn, table) for table in (user_table, "django_session", "django_migrations")}
    lines = []
    sessions_then = then.get("public.django_session")
    lines.append(
        f"Every signed-in user is signed out, you too: sessions become the backup's "
        f"({sessions_then if sessions_then is not None else 'none'} then, {now['django_session']} now)."
    )
    users_then, users_now = then.get(f"public.{user_table}"), now[user_table]
    if users_then is not None and users_now is not None and users_then != users_now:
        lines.append(
            f"Accounts go back to the backup's: {users_then} then, {users_now} now "
            "(accounts created since disappear, deleted ones return, passwords are the backup's)."
        )
    migrations_then, migrations_now = then.get("public.django_migrations"), now["django_migrations"]
    if migrations_then is not None and migrations_now is not None and migrations_then < migrations_now:
        lines.append(
            f"The schema goes back {migrations_now - migrations_then} migration(s): readiness answers 503 "
            "(PendingMigrations) until `manage.py migrate` runs."
        )
    lines.append(
        "Kept as they are now: backup, restore and migration history, alerts, and the admin log of dbops' actions "
        "(entries of accounts the backup does not hold are dropped)."
    )
    return lines

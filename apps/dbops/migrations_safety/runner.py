"""Guarded migrate and rollback: analyze, refuse what blocks, back up, run under lock/statement timeouts, record.

Django's own `migrate` does the work (signals, recorder, squashed migrations); this module wraps it: an
advisory lock so two deploys never migrate at once, `lock_timeout`/`statement_timeout` on the migration
session with bounded retries of an atomic migration that timed out on a lock, a timing per migration, and
a `MigrationRun` with the plan, the findings and how it ended.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import logging
import socket
import time
from collections.abc import Iterator

import psycopg
from django.core.management import call_command
from django.core.management.commands.migrate import Command as MigrateCommand
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from dbops.backups.logical import take_backup
from dbops.conf import get_config, mask_url
from dbops.database.pool import direct_connection
from dbops.database.rows import one_row
from dbops.exceptions import BackupError, MigrationFailed, MigrationRefused, MigrationSelectionError
from dbops.logs import log_event
from dbops.migrations_safety.analysis import SafetyReport, analyze, full_plan
from dbops.migrations_safety.plan import PlanStep, migration_plan, plan_steps
from dbops.models import BackupRecord, MigrationRun
from dbops.progress import Progress
from dbops.progress import quiet as _quiet
from dbops.signals import migration_run_finished

logger = logging.getLogger("dbops.migrations")

# pg_advisory_lock key shared by every dbops migration run of a database ("dbops" in ASCII, then 2).
MIGRATION_LOCK_KEY = 0x64626F707302
LOCK_NOT_AVAILABLE = "55P03"


@dataclasses.dataclass
class RunOutcome:
    """What a guarded run planned, found and did; `run` is saved unless this was a dry run."""

    run: MigrationRun
    plan: list[PlanStep]
    report: SafetyReport | None
    dry_run: bool = False

    def as_dict(self) -> dict:
        run = self.run
        return {
            "id": run.pk,
            "kind": run.kind,
            "status": "dry_run" if self.dry_run else run.status,
            "database": run.database_alias,
            "target": run.target,
            "reason": run.reason,
            "allowed_unsafe": run.allowed_unsafe,
            "backup_id": run.backup_id,
            "duration_seconds": run.duration_seconds,
            "plan": [step.as_dict() for step in self.plan],
            "steps": run.migrations,
            "error": run.error or None,
            "analysis": self.report.as_dict() if self.report else None,
        }


class _StepTracker:
    """Receives Django's migrate progress callbacks: times each migration and counts its attempts."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.steps: dict[str, dict] = {}
        self.current: str | None = None
        self.started = 0.0

    def __call__(self, action: str, migration=None, fake: bool = False) -> None:
        if action in ("apply_start", "unapply_start"):
            self.current = f"{migration.app_label}.{migration.name}"
            self.started = time.monotonic()
            step = self.steps.setdefault(
                self.current, {"migration": self.current, "seconds": None, "attempts": 0, "outcome": "running"}
            )
            step["attempts"] += 1
            verb = "applying" if action == "apply_start" else "unapplying"
            self.progress(f"{verb} {self.current} (attempt {step['attempts']})")
        elif action in ("apply_success", "unapply_success") and self.current:
            step = self.steps[self.current]
            step["seconds"] = round(time.monotonic() - self.started, 3)
            step["outcome"] = "applied" if action == "apply_success" else "unapplied"
            self.progress(f"  done in {step['seconds']:.3f} s")
            self.current = None

    def failed(self, error: str) -> None:
        if self.current:
            step = self.steps[self.current]
            step["seconds"] = round(time.monotonic() - self.started, 3)
            step["outcome"], step["error"] = "failed", error


class _TrackedMigrate(MigrateCommand):
    """Django's migrate command, reporting each migration to a `_StepTracker` instead of printing."""

    def __init__(self, tracker: _StepTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def migration_progress_callback(self, action, migration=None, fake=False):
        self.tracker(action, migration, fake)


def _is_lock_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.Error) and seen.sqlstate == LOCK_NOT_AVAILABLE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _error_line(exc: BaseException) -> str:
    text = mask_url(str(exc)).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]


def _history_ready() -> bool:
    """Tell whether dbops' history tables exist yet (they do not before the first migrate)."""
    try:
        return MigrationRun._meta.db_table in connections["default"].introspection.table_names()
    except DatabaseError:
        return False


def _save(run: MigrationRun) -> None:
    """Save the run when the history table exists; a database that vanished only costs the record (logged)."""
    if not _history_ready():
        return
    try:
        run.save()
    except DatabaseError as exc:
        log_event(logger, logging.ERROR, "migration_run_unrecorded", error=_error_line(exc))


def _finish(run: MigrationRun, status: str, started: float, error: str = "") -> None:
    run.ended(status, error, started=started)
    _save(run)
    migration_run_finished.send(sender=MigrationRun, run=run)
    log_event(
        logger,
        logging.INFO,
        "migration_run",
        kind=str(run.kind),
        status=str(status),
        target=run.target,
        seconds=run.duration_seconds,
    )


@contextlib.contextmanager
def _migration_lock(alias: str) -> Iterator[None]:
    with direct_connection(alias, timeout=10, statement_timeout=0) as conn:
        if not one_row(conn.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_KEY]))[0]:
            raise MigrationRefused("another migration run holds the lock on this database: wait for it to finish")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])


@contextlib.contextmanager
def _guarded_session(alias: str) -> Iterator[None]:
    """Set lock_timeout and statement_timeout on the connection migrate uses; restore its defaults after."""
    config = get_config().migrations
    connection = connections[alias]
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
            [f"{config.lock_timeout_ms}ms", f"{config.statement_timeout}s"],
        )
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                # RESET returns to the connection's start-up values (the pool's query timeout).
                cursor.execute("RESET lock_timeout; RESET statement_timeout")
        except DatabaseError:
            connection.close()


def _where_it_stopped(alias: str, app_label: str) -> str:
    """Name the latest applied migration of `app_label`, read back from django_migrations."""
    executor = MigrationExecutor(connections[alias])
    applied = MigrationRecorder(connections[alias]).applied_migrations()
    last = [node for node in full_plan(executor.loader) if node[0] == app_label and node in applied]
    return f"{app_label}.{last[-1][1]}" if last else f"{app_label} zero (nothing applied)"


def _new_run(kind: str, alias: str, target: str, reason: str, requested_by: str) -> MigrationRun:
    try:
        user = requested_by or getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return MigrationRun(
        kind=kind,
        started_at=timezone.now(),
        database_alias=alias,
        requested_by=user,
        host=socket.gethostname(),
        reason=reason,
        target=target,
    )


def _pre_migration_backup(run: MigrationRun, alias: str, backup: bool, progress: Progress) -> None:
    config = get_config()
    if not (backup and config.backup_enabled and config.migrations.backup):
        return
    if not _history_ready():
        progress("no pre-migration backup: dbops' tables do not exist yet (first migrate)")
        return
    progress("taking the pre-migration backup")
    try:
        run.backup = take_backup(trigger=BackupRecord.Trigger.PRE_MIGRATION, alias=alias, progress=progress)
    except BackupError as exc:
        raise MigrationRefused(f"pre-migration backup failed ({exc}): fix it, or pass --no-backup") from exc


def _execute(run: MigrationRun, alias: str, args: list[str], started: float, progress: Progress) -> None:
    """Run Django's migrate to `args` under the guards, retrying an atomic migration that hit lock_timeout."""
    config = get_config().migrations
    tracker = _StepTracker(progress)
    try:
        with _guarded_session(alias):
            while True:
                try:
                    call_command(
                        _TrackedMigrate(tracker),
                        *args,
                        database=alias,
                        interactive=False,
                        verbosity=0,
                        skip_checks=True,
                    )
                    break
                except Exception as exc:
                    step = tracker.steps.get(tracker.current or "")
                    migration_atomic = step is not None and _atomic(alias, tracker.current)
                    if _is_lock_timeout(exc) and migration_atomic and step["attempts"] <= config.lock_retries:
                        progress(f"  lock_timeout ({config.lock_timeout_ms} ms): retrying")
                        tracker.current = None
                        time.sleep(config.lock_retry_delay_ms / 1000)
                        continue
                    raise
    except Exception as exc:
        failed = tracker.current
        tracker.failed(_error_line(exc))
        run.migrations = list(tracker.steps.values())
        error = _failure_message(alias, failed, exc, tracker)
        _finish(run, MigrationRun.Status.FAILED, started, error)
        raise MigrationFailed(error) from exc
    run.migrations = list(tracker.steps.values())
    _finish(run, MigrationRun.Status.SUCCEEDED, started)


def _atomic(alias: str, key: str) -> bool:
    app_label, name = key.split(".", 1)
    migration = MigrationExecutor(connections[alias]).loader.graph.nodes.get((app_label, name))
    return migration is not None and migration.atomic


def _failure_message(alias: str, failed: str | None, exc: BaseException, tracker: _StepTracker) -> str:
    cause = _error_line(exc)
    if failed is None:
        return f"migrate failed before any migration ran: {cause}"
    attempts = tracker.steps[failed]["attempts"]
    if _is_lock_timeout(exc):
        config = get_config().migrations
        cause = (
            f"lock_timeout ({config.lock_timeout_ms} ms) waiting for a table lock, {attempts} attempt(s): another "
            f"session holds a conflicting lock (see pg_locks / pg_stat_activity)"
        )
    try:
        where = _where_it_stopped(alias, failed.split(".")[0])
        position = f"the database is at {where}"
    except DatabaseError:
        position = "the database could not be read back"
    partial = "" if _safe_atomic(alias, failed) else " (non-atomic: some of its operations may have run)"
    return f"{failed} failed{partial}: {cause}; {position}"


def _safe_atomic(alias: str, key: str) -> bool:
    try:
        return _atomic(alias, key)
    except DatabaseError:
        return True


def _run_guarded(
    outcome: RunOutcome, alias: str, args: list[str], backup: bool, started: float, progress: Progress
) -> RunOutcome:
    """Hold the migration lock, take the backup, run migrate; failures carry the outcome for the caller."""
    run = outcome.run
    with _migration_lock(alias):
        _save(run)
        try:
            _pre_migration_backup(run, alias, backup, progress)
        except MigrationRefused as exc:
            _finish(run, MigrationRun.Status.REFUSED, started, str(exc))
            raise MigrationRefused(str(exc), outcome) from exc
        try:
            _execute(run, alias, args, started, progress)
        except MigrationFailed as exc:
            raise MigrationFailed(str(exc), outcome) from exc
    return outcome


def apply_migrations(
    *,
    alias: str = "default",
    app_label: str | None = None,
    migration_name: str | None = None,
    allow_unsafe: bool = False,
    reason: str = "",
    backup: bool = True,
    dry_run: bool = False,
    requested_by: str = "",
    progress: Progress = _quiet,
) -> RunOutcome:
    """Analyze the forward plan to the target, refuse on block findings, back up, migrate under the guards."""
    if allow_unsafe and not reason.strip():
        raise MigrationSelectionError("--allow-unsafe needs --reason: say why the blocking findings are acceptable")
    target = ".".join(part for part in (app_label, migration_name) if part) or "all pending"
    run = _new_run(MigrationRun.Kind.APPLY, alias, target, reason, requested_by)
    started = time.monotonic()
    executor, plan = migration_plan(alias, app_label, migration_name)
    if any(backwards for _, backwards in plan):
        raise MigrationSelectionError(f"{target} is behind the database: use migration_rollback to unapply")
    steps = plan_steps(executor, plan, alias)
    nodes = [(m.app_label, m.name) for m, _ in plan]
    report = analyze(alias=alias, nodes=nodes, loader=executor.loader)
    run.plan = [step.migration for step in steps]
    run.findings = [finding.as_dict() for finding in report.findings]
    run.allowed_unsafe = allow_unsafe
    outcome = RunOutcome(run, steps, report, dry_run)
    if report.blocking and not allow_unsafe:
        codes = ", ".join(sorted({f"{f.code} {f.migration}" for f in report.blocking}))
        message = f"refused: {len(report.blocking)} blocking finding(s) ({codes}); fix them, suppress them with a "
        message += "reason, or pass --allow-unsafe --reason"
        if not dry_run:
            _finish(run, MigrationRun.Status.REFUSED, started, message)
        raise MigrationRefused(message, outcome)
    if dry_run or not plan:
        if not plan:
            progress("no migrations to apply")
        return outcome
    return _run_guarded(outcome, alias, [a for a in (app_label, migration_name) if a], backup, started, progress)


def rollback_migrations(
    *,
    alias: str = "default",
    app_label: str,
    target: str,
    reason: str = "",
    backup: bool = True,
    dry_run: bool = False,
    requested_by: str = "",
    progress: Progress = _quiet,
) -> RunOutcome:
    """Unapply `app_label` back to `target` (a migration name or "zero"): refuse irreversible steps, back up, run."""
    run = _new_run(MigrationRun.Kind.ROLLBACK, alias, f"{app_label}.{target}", reason, requested_by)
    started = time.monotonic()
    executor, plan = migration_plan(alias, app_label, target)
    if not plan:
        raise MigrationSelectionError(f"nothing to roll back: {app_label} is already at {target}")
    if not all(backwards for _, backwards in plan):
        raise MigrationSelectionError(f"{app_label}.{target} is ahead of the database: use migration_apply")
    steps = plan_steps(executor, plan, alias)
    run.plan = [step.migration for step in steps]
    outcome = RunOutcome(run, steps, None, dry_run)
    blocked = [f"{step.migration} {what}" for step in steps for what in step.irreversible]
    failing = [f"{step.migration} {what}" for step in steps for what in step.will_fail]
    if blocked or failing:
        reasons = [f"cannot unapply {'; '.join(blocked)}: give it reverse code"] if blocked else []
        reasons += [f"unapplying would fail: {'; '.join(failing)}"] if failing else []
        message = f"refused: {'; '.join(reasons)}; or restore a backup instead"
        if not dry_run:
            _finish(run, MigrationRun.Status.REFUSED, started, message)
        raise MigrationRefused(message, outcome)
    if dry_run:
        return outcome
    return _run_guarded(outcome, alias, [app_label, target], backup, started, progress)


def last_run() -> dict | None:
    """Summarize the newest MigrationRun for the status endpoint (None before any)."""
    if not _history_ready():
        return None
    run = MigrationRun.objects.order_by("-started_at").first()
    if run is None:
        return None
    return {
        "id": run.pk,
        "kind": run.kind,
        "status": run.status,
        "target": run.target,
        "started_at": run.started_at.isoformat(),
        "duration_seconds": run.duration_seconds,
        "error": run.error or None,
    }

"""Recorded PITR runs (`PitrRun`): backup and verify, and the journal of runs the database could not take."""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import time
from pathlib import Path

import psycopg
import psycopg.sql
from django.core import serializers
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError
from django.utils import timezone

from dbops.backups.logical.locks import PITR_LOCK_KEY, advisory_lock
from dbops.backups.pitr.pgbackrest import failure, run_pgbackrest
from dbops.backups.pitr.target import PitrError, PitrRefused, PitrTarget
from dbops.backups.pitr.window import status
from dbops.conf import get_config
from dbops.exceptions import BackupInProgress
from dbops.logs import log_event
from dbops.models import PitrRun
from dbops.progress import Progress
from dbops.progress import quiet as _quiet

logger = logging.getLogger("dbops.pitr")
BACKUP_TYPES = ("full", "diff", "incr")


def record(kind: str, target: PitrTarget, *, database_up: bool = True, **fields) -> PitrRun:
    """Start a run's record; with the database down (an in-place restore) it is kept for the journal instead."""
    run = PitrRun(kind=kind, started_at=timezone.now(), stanza=target.stanza, **fields)
    with contextlib.suppress(KeyError, OSError):
        run.requested_by = getpass.getuser()
    if database_up:
        with contextlib.suppress(DatabaseError):
            run.save()
    return run


def finish(
    run: PitrRun, status_: str, started: float, error: str = "", *, journal: Path | None = None, **details
) -> PitrRun:
    """End a run's record; when it cannot be saved (or `journal` is given: the database is down), journal it."""
    run.ended(status_, error, started=started, details={**run.details, **details})
    if journal is None:
        try:
            run.save()
            return run
        except DatabaseError:
            journal = get_config().pitr.repo_path / JOURNAL_NAME
    journal.parent.mkdir(parents=True, exist_ok=True)
    with journal.open("a") as lines:
        # One JSON object per line, whatever the JSON serializer's layout (Django 6 spreads it over lines).
        lines.write(json.dumps(serializers.serialize("python", [run])[0], cls=DjangoJSONEncoder) + "\n")
    return run


# Runs the database could not take (it was down, or the one being restored): saved by record_journal later.
JOURNAL_NAME = "unrecorded-runs.jsonl"


def record_journal(target: PitrTarget) -> int:
    """Save the journaled runs into the history once the database answers; return how many were saved.

    Checked with a direct connection first: a pool asked while the server is down logs a warning per retry.
    """
    path = target.repo_path / JOURNAL_NAME
    if not path.exists() or not path.read_text().strip():
        return 0
    try:
        with target.connect(timeout=2):
            pass
    except psycopg.Error:
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    saved = 0
    for done, line in enumerate(lines):
        try:
            run = journaled_run(line)
        except (ValueError, TypeError, LookupError, ValidationError, serializers.base.DeserializationError) as exc:
            # The journal is a file on disk: anything but a valid PITR run is set aside, never saved as a model.
            with path.with_name(REFUSED_NAME).open("a") as refused:
                refused.write(line + "\n")
            log_event(logger, logging.WARNING, "pitr_journal_line_refused", reason=str(exc)[:200], file=str(path))
            continue
        try:
            run.save()
        except DatabaseError:  # keep what is not saved yet, and only that, for the next time
            path.write_text("\n".join(lines[done:]) + "\n")
            return saved
        saved += 1
    path.unlink()
    return saved


# Journal lines that were not a valid PITR run: kept for a person to read, never loaded.
REFUSED_NAME = "unrecorded-runs.refused.jsonl"


def journaled_run(line: str) -> PitrRun:
    """Rebuild one journaled run: only a `PitrRun` whose fields validate, with a new id."""
    data = json.loads(line)
    label = PitrRun._meta.label_lower
    if not isinstance(data, dict) or data.get("model") != label or not isinstance(data.get("fields"), dict):
        raise ValueError(f"not a {label} record")
    (entry,) = serializers.deserialize("python", [data])
    run = entry.object
    if not isinstance(run, PitrRun):
        raise ValueError(f"not a {label} record")
    run.pk = None  # a restored history may already hold that id for another run
    run.full_clean()
    return run


def backup(target: PitrTarget, *, backup_type: str = "full", progress: Progress = _quiet) -> PitrRun:
    """Take a pgBackRest backup (full, diff or incr) and record it with its label."""
    if backup_type not in BACKUP_TYPES:
        raise PitrRefused(f"backup type must be one of {', '.join(BACKUP_TYPES)}")
    with run_lock():
        started = time.monotonic()
        run = record(PitrRun.Kind.BACKUP, target, backup_type=backup_type)
        progress(f"pgbackrest backup --type={backup_type}")
        result = run_pgbackrest(target, "backup", f"--type={backup_type}", timeout=6 * 3600)
        if result.returncode != 0:
            finish(run, PitrRun.Status.FAILED, started, failure(result))
            raise PitrError(f"pgbackrest backup failed: {failure(result)}")
        newest = (status(target)["backups"] or [{}])[-1]
        run.label = newest.get("label", "")
        return finish(run, PitrRun.Status.SUCCEEDED, started, size_bytes=newest.get("size_bytes"))


def verify(target: PitrTarget, *, progress: Progress = _quiet) -> PitrRun:
    """Run `pgbackrest verify` (checksums of every backup file and archived WAL segment) and record it."""
    with run_lock():
        started = time.monotonic()
        run = record(PitrRun.Kind.VERIFY, target)
        progress("pgbackrest verify")
        result = run_pgbackrest(target, "verify", "--log-level-console=info", timeout=6 * 3600)
        if result.returncode != 0:
            finish(run, PitrRun.Status.FAILED, started, failure(result))
            raise PitrError(f"pgbackrest verify failed: {failure(result)}")
        return finish(run, PitrRun.Status.SUCCEEDED, started, output=result.stdout.strip()[-2000:])


@contextlib.contextmanager
def run_lock():
    """Hold the PITR run lock while a backup or verify runs (first ending the records of runs that died)."""
    reap_interrupted_runs()
    try:
        with advisory_lock("default", PITR_LOCK_KEY, "another pitr backup or verify is running: try again later"):
            yield
    except BackupInProgress as exc:
        raise PitrRefused(str(exc)) from None


def reap_interrupted_runs() -> int:
    """End `running` backup and verify records whose process died (kill -9, a lost host); return how many.

    A running backup or verify holds the PITR run lock for as long as its session lives: a `running` record
    whose lock is free has nobody left to finish it. With the database down there is nothing to end yet.
    """
    try:
        with advisory_lock("default", PITR_LOCK_KEY, "busy"):
            return PitrRun.objects.filter(
                status=PitrRun.Status.RUNNING, kind__in=[PitrRun.Kind.BACKUP, PitrRun.Kind.VERIFY]
            ).update(
                status=PitrRun.Status.FAILED,
                finished_at=timezone.now(),
                error="interrupted: the pitr process died before recording its end (pgBackRest may have finished "
                "the backup: pitr status lists what the repository holds)",
            )
    except (BackupInProgress, DatabaseError, psycopg.Error):
        return 0

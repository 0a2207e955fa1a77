"""Point-in-time restore: refused outside the window, then checked by starting the copy until it reaches the target."""

from __future__ import annotations

import datetime
import shlex
import time
from pathlib import Path

import psycopg
import psycopg.sql

from dbops.backups.pitr.pgbackrest import failure, run_pgbackrest
from dbops.backups.pitr.runs import JOURNAL_NAME, finish, record
from dbops.backups.pitr.target import PitrError, PitrRefused, PitrTarget
from dbops.backups.pitr.window import status
from dbops.conf import mask_url
from dbops.database.rows import one_row
from dbops.localdb import find_bindir, free_port
from dbops.models import PitrRun
from dbops.osuser import give_to, run_as
from dbops.progress import Progress
from dbops.progress import quiet as _quiet

# Connection failures that mean nothing listens there; anything else (a wrong password, a missing role) is an answer.
_NOT_LISTENING = ("connection refused", "no such file or directory", "could not connect", "timeout expired")


def server_running(target: PitrTarget) -> bool:
    """Tell whether the server answers; refuse when it answers with an error (it runs, but not for us)."""
    try:
        with target.connect(timeout=2):
            return True
    except psycopg.OperationalError as exc:
        cause = mask_url(str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)
        if any(marker in str(exc).lower() for marker in _NOT_LISTENING) and "authentication" not in str(exc).lower():
            return False
        raise PitrRefused(f"refused: cannot tell whether the server on {target.pg_path} runs: {cause}") from None


def restore(
    target: PitrTarget,
    target_time: datetime.datetime,
    *,
    data_dir: Path | None = None,
    progress: Progress = _quiet,
) -> PitrRun:
    """Restore to `target_time`: into a new `data_dir`, or in place (`--delta`, the server must be stopped).

    Refused, before anything is written, when the time is outside the recoverable window or the server still
    runs on the data directory being replaced.
    """
    if target_time.tzinfo is None:
        raise PitrRefused("the target time needs a time zone (e.g. 2026-11-27T10:15:00+00:00)")
    if data_dir is not None and not data_dir.is_absolute():
        raise PitrRefused(f"refused: --to {data_dir} is relative: give the new data directory's absolute path")
    if data_dir is not None and data_dir.exists() and not data_dir.is_dir():
        raise PitrRefused(f"refused: --to {data_dir} is a file, not a directory")
    window = status(target)
    earliest, latest = window["earliest_restorable"], window["latest_restorable"]
    started = time.monotonic()
    # In place, the history's own database is the one being replaced: the run goes to the local journal and into
    # the restored history once it answers (record_journal), never through a pool retrying a stopped server.
    in_place_while_down = data_dir is None and not server_running(target)
    journal = target.repo_path / JOURNAL_NAME if in_place_while_down else None
    run = record(
        PitrRun.Kind.RESTORE,
        target,
        database_up=not in_place_while_down,
        target_time=target_time,
        data_dir=str(data_dir or target.pg_path),
    )

    def refuse(reason: str) -> PitrRefused:
        finish(run, PitrRun.Status.REFUSED, started, reason, journal=journal)
        return PitrRefused(reason)

    if data_dir is None and not in_place_while_down:
        raise refuse(f"refused: the server on {target.pg_path} is running: stop it before an in-place restore")
    if earliest is None or not (earliest <= target_time <= latest):
        shown = f"{earliest:%Y-%m-%d %H:%M:%S%z} .. {latest:%Y-%m-%d %H:%M:%S%z}" if earliest else "empty (no backup)"
        raise refuse(f"refused: {target_time.isoformat()} is outside the recoverable window {shown}")
    args = ["restore", "--type=time", f"--target={target_time.isoformat(sep=' ')}", "--target-action=promote"]
    if data_dir is None:
        args.append("--delta")
    else:
        if data_dir.exists() and any(data_dir.iterdir()):
            raise refuse(f"refused: {data_dir} is not empty")
        data_dir.mkdir(parents=True, exist_ok=True)
        give_to(target.os_user, data_dir, 0o700)
        # A copy must not archive into the live stanza's repository (its archiver would fail every minute).
        args += [f"--pg1-path={data_dir}", "--archive-mode=off"]
    progress(f"pgbackrest {' '.join(args)}")
    result = run_pgbackrest(target, *args, timeout=6 * 3600)
    if result.returncode != 0:
        finish(run, PitrRun.Status.FAILED, started, failure(result), journal=journal)
        raise PitrError(f"pgbackrest restore failed: {failure(result)}")
    folder = data_dir or target.pg_path
    start = f"pg_ctl -D {folder} -l {folder}/server.log start" + ("" if data_dir is None else ' -o "-p <free port>"')
    # In place too: the server is started on a free loopback port until it has replayed to the target and
    # promoted, then stopped for the operator (systemd, Patroni) to start as usual.
    progress("starting the restored cluster on a free port until it reaches the target")
    problem = _reaches_target(target, folder, archive=data_dir is None)
    if problem:
        finish(run, PitrRun.Status.FAILED, started, problem, journal=journal, start_with=start)
        raise PitrError(f"the restored cluster did not reach {target_time.isoformat()}: {problem}")
    return finish(run, PitrRun.Status.SUCCEEDED, started, journal=journal, start_with=start, reached_target="yes")


def _reaches_target(target: PitrTarget, data_dir: Path, *, archive: bool, timeout: float = 600) -> str:
    """Start the restored cluster on a free port, wait until recovery ended at the target and it promoted, stop it.

    Return "" when it did, else the server's own reason (e.g. "recovery ended before configured recovery target
    was reached"). A copy (`archive` False) must not archive into the live stanza; in place it must, or the new
    timeline's history file never reaches the repository.
    """
    port = free_port()
    log = data_dir / "dbops-restore-check.log"
    options = server_options(port, data_dir, archive=archive)

    def pg_ctl(*args: str) -> int:
        command = [str(find_bindir() / "pg_ctl"), "-D", str(data_dir), *args]
        return run_as(target.os_user, command, timeout=timeout + 60).returncode

    started = pg_ctl("-l", str(log), "-o", options, "-w", "-t", str(int(timeout)), "start")
    try:
        if started != 0:
            return _server_log_reason(log) or "the restored server did not start"
        conninfo = {**target.conninfo, "host": "127.0.0.1", "port": port}
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(**conninfo, connect_timeout=5, autocommit=True) as conn:
                    if not one_row(conn.execute("SELECT pg_is_in_recovery()"))[0]:
                        return ""
            except psycopg.OperationalError:
                if pg_ctl("status"):
                    return _server_log_reason(log) or "the restored server stopped during recovery"
            if time.monotonic() > deadline:
                return f"still recovering after {timeout:.0f} s"
            time.sleep(0.2)
    finally:
        pg_ctl("stop", "-m", "fast", "-w")


def server_options(port: int, data_dir: Path, *, archive: bool) -> str:
    """Return pg_ctl's `-o` text for a restored copy. pg_ctl hands it to /bin/sh: every value is shell-quoted."""
    options = ["-p", str(port), "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data_dir}"]
    if not archive:
        options += ["-c", "archive_mode=off"]
    return " ".join(shlex.quote(option) for option in options)


def _server_log_reason(log: Path) -> str:
    """Return the server's FATAL (or last) line from its log, for the record and the message."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    fatal = [line for line in lines if "FATAL:" in line or "PANIC:" in line]
    return mask_url((fatal[0] if fatal else lines[-1] if lines else "")[:500])

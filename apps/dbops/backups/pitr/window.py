"""The recoverable window: backups from `pgbackrest info`, its end from the newest archived commit (pg_waldump)."""

from __future__ import annotations

import datetime
import gzip
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import psycopg.sql

from dbops.backups.pitr.pgbackrest import failure, repository_problem, run_pgbackrest, stanza_info
from dbops.backups.pitr.target import PitrError, PitrTarget
from dbops.conf import get_config
from dbops.database.rows import one_row
from dbops.exceptions import DbopsError, LocalDbError
from dbops.localdb import find_bindir


def _epoch(value: float | None) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(value, tz=datetime.UTC) if value else None


def _archived_segments(target: PitrTarget) -> list[tuple[str, float]]:
    """Return the repository's archived WAL segment files (path in the repository, time archived), newest first.

    Listed through pgBackRest (`repo-ls`), so a repository in a bucket reads like a local one. A repository that
    cannot be listed leaves the window unknown: PitrError, never an end taken from somewhere else.
    """
    result = run_pgbackrest(target, "repo-ls", f"archive/{target.stanza}", "--recurse", "--output=json", timeout=120)
    if result.returncode != 0:
        raise PitrError(f"the archive in {target.repo_location} cannot be listed: {failure(result)}")
    found = []
    for path, entry in json.loads(result.stdout or "{}").items():
        name = path.rpartition("/")[2]
        if entry.get("type") == "file" and len(name) > 24 and all(c in "0123456789ABCDEF" for c in name[:24]):
            found.append((f"archive/{target.stanza}/{path}", float(entry.get("time") or 0)))
    return sorted(found, key=lambda item: item[0].rpartition("/")[2][:24], reverse=True)


_COMMIT = re.compile(r"desc: COMMIT (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")


# How far back to look for a commit: quiet servers archive segments (archive_timeout) that hold none.
COMMIT_SEARCH_SEGMENTS = 24


def last_archived_commit(target: PitrTarget, segments: list[tuple[str, float]]) -> datetime.datetime | None:
    """Return the newest commit time in the archived WAL: a restore reaches any moment before it.

    The time a segment was archived is later than its last commit; restoring to it fails ("recovery ended before
    configured recovery target was reached"). pg_waldump reads the newest segments (fetched with `repo-get`,
    decompressed) for COMMIT records. None when the archive holds no commit pg_waldump can read.
    """
    try:
        waldump = find_bindir() / "pg_waldump"
    except LocalDbError:
        return None
    if not waldump.exists():
        return None
    for path, _archived_at in segments[:COMMIT_SEARCH_SEGMENTS]:
        fetched = run_pgbackrest(target, "repo-get", path, timeout=120, text=False)
        if fetched.returncode != 0:
            continue
        with tempfile.TemporaryDirectory(prefix="dbops-wal-") as folder:
            plain = Path(folder) / path.rpartition("/")[2][:24]
            try:
                plain.write_bytes(_decompress(path, fetched.stdout))
            except (OSError, ValueError):
                continue
            result = subprocess.run(  # noqa: S603 - the server's own pg_waldump on a copy of an archived segment
                [str(waldump), str(plain)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={**os.environ, "TZ": "UTC", "PGTZ": "UTC"},
            )
        commits = _COMMIT.findall(result.stdout)
        if commits:
            return datetime.datetime.fromisoformat(commits[-1]).replace(tzinfo=datetime.UTC)
    return None


def _decompress(path: str, content: bytes) -> bytes:
    if path.endswith(".gz"):
        return gzip.decompress(content)
    if path.endswith((".zst", ".lz4", ".bz2")):
        raise ValueError(f"{path.rpartition('.')[2]} archives are not read by dbops: the window ends at archive time")
    return content


def status(target: PitrTarget) -> dict:
    """Report backups, WAL range and the recoverable window (earliest .. latest restorable time)."""
    info = stanza_info(target)
    if info is None:
        raise PitrError(f"pgbackrest info failed for stanza {target.stanza}: run manage.py pitr setup-check")
    problem = repository_problem(info)
    if problem:
        raise PitrError(f"the repository {target.repo_location} cannot be read: {problem}")
    backups = [
        {
            "label": b["label"],
            "type": b["type"],
            "start": _epoch(b["timestamp"]["start"]),
            "stop": _epoch(b["timestamp"]["stop"]),
            "size_bytes": b.get("info", {}).get("size"),
            "repository_bytes": b.get("info", {}).get("repository", {}).get("delta"),
            "wal_start": b.get("archive", {}).get("start"),
            "wal_stop": b.get("archive", {}).get("stop"),
        }
        for b in info.get("backup", [])
    ]
    archive = info.get("archive") or [{}]
    failing = None
    try:
        with target.connect() as conn:
            last_archived, last_failed, last_failed_wal = one_row(
                conn.execute("SELECT last_archived_time, last_failed_time, last_failed_wal FROM pg_stat_archiver")
            )
        if last_failed and (last_archived is None or last_failed > last_archived):
            failing = f"archiving of {last_failed_wal} failed at {last_failed:%Y-%m-%d %H:%M:%S}"
    except psycopg.Error:
        pass
    # The window is what the repository holds, nothing else: no backup there, no window (pg_stat_archiver says
    # what the server sent, not what is still in the repository: a wiped bucket must not show a window).
    earliest = min((b["stop"] for b in backups), default=None)
    newest_stop = max((b["stop"] for b in backups), default=None)
    latest = None
    if backups:
        segments = _archived_segments(target)
        last_commit = last_archived_commit(target, segments)
        if last_commit is not None:
            # PostgreSQL stops a time-targeted recovery at the first commit after the target, so it must see one:
            # the latest reachable moment is just before the newest archived commit.
            latest = max(filter(None, (last_commit - datetime.timedelta(microseconds=1), newest_stop)), default=None)
        else:  # no archive dbops can read: the archiving time, which may lie after the last restorable commit
            newest_segment = _epoch(max((archived_at for _path, archived_at in segments), default=None))
            latest = max(filter(None, (newest_stop, newest_segment)), default=None)
    return {
        "stanza": target.stanza,
        "status": info.get("status", {}).get("message"),
        "backups": backups,
        "wal_min": archive[-1].get("min"),
        "wal_max": archive[-1].get("max"),
        "earliest_restorable": earliest,
        "latest_restorable": latest,
        "archiver_failing": failing,
    }


# Health and the dashboard read the window at most this often per process: reading it runs pgBackRest three times
# and pg_waldump (0.04 s -> 0.6-0.7 s per /health/ call uncached). `pitr status` always reads it afresh.
STATUS_CACHE_SECONDS = 30.0
_cached: dict[tuple[str, str], tuple[float, dict | None, DbopsError | None]] = {}
_cache_lock = threading.Lock()


def cached_status(target: PitrTarget) -> dict:
    """Return `status(target)`, read at most every STATUS_CACHE_SECONDS per process (failures are cached too)."""
    key = (target.stanza, target.repo_location)
    now = time.monotonic()
    with _cache_lock:
        hit = _cached.get(key)
    if hit is None or now - hit[0] >= STATUS_CACHE_SECONDS:
        try:
            hit = (now, status(target), None)
        except DbopsError as exc:
            hit = (now, None, exc)
        with _cache_lock:
            _cached[key] = hit
    if hit[2] is not None:
        raise hit[2]
    return hit[1] or {}


def forget_status() -> None:
    with _cache_lock:
        _cached.clear()


def window_summary() -> dict | None:
    """Return the recoverable window for the dashboard and health (None when PITR is not configured)."""
    if not get_config().pitr.enabled:
        return None
    try:
        report = cached_status(PitrTarget.from_settings())
    except DbopsError as exc:
        return {"error": str(exc)}
    return {
        "earliest": report["earliest_restorable"],
        "latest": report["latest_restorable"],
        "backups": len(report["backups"]),
        "archiver_failing": report["archiver_failing"],
    }

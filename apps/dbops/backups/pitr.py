"""Point-in-time recovery driven through pgBackRest (an existing engine: dbops configures, checks and records it).

pgBackRest runs on the database host as the server's OS user: full/diff/incr backups, WAL archiving
(`archive_command` = `pgbackrest ... archive-push %p`), `verify`, `info --output=json` and
`restore --type=time`. dbops writes its configuration file, tells exactly which server settings are missing,
computes the recoverable window (the oldest backup's end .. the server's last archived WAL), refuses a
restore outside it, and records every run (`PitrRun`). Managed databases (RDS, Cloud SQL, Azure) do PITR
themselves: dbops detects their host names and says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import getpass
import gzip
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import psycopg.sql
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections
from django.utils import timezone

from dbops.conf import BackupS3Config, PitrConfig, get_config, mask_url
from dbops.exceptions import DbopsError, LocalDbError
from dbops.localdb import find_bindir, free_port
from dbops.models import PitrRun

MANAGED_HOST_SUFFIXES = {
    ".rds.amazonaws.com": "Amazon RDS / Aurora",
    ".postgres.database.azure.com": "Azure Database for PostgreSQL",
    ".cloudsql": "Google Cloud SQL",
    ".supabase.co": "Supabase",
    ".neon.tech": "Neon",
}
BACKUP_TYPES = ("full", "diff", "incr")
# The longest archive_timeout setup-check accepts: how stale the newest restorable moment may get on a quiet server.
MAX_ARCHIVE_TIMEOUT = 300

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    """Progress sink that prints nothing."""


class PitrError(DbopsError):
    """A PITR operation could not run or failed."""


class PitrRefused(PitrError):
    """Refused before touching anything (outside the window, server running, not configured)."""


@dataclasses.dataclass(frozen=True)
class PitrTarget:
    """One server and its pgBackRest repository."""

    stanza: str
    repo_path: Path
    pg_path: Path
    pg_port: int
    socket_path: str
    pg_user: str
    conninfo: dict = dataclasses.field(repr=False)  # holds the password
    retention_full: int = 2
    run_as: str = ""
    pg_password: str = dataclasses.field(default="", repr=False)  # pgBackRest's database user's, given as PGPASSWORD
    repo_s3: BackupS3Config | None = dataclasses.field(default=None, repr=False)  # holds the store's credentials
    s3_verify_tls: bool = True
    s3_ca_file: str = ""

    @classmethod
    def from_settings(cls, alias: str = "default") -> PitrTarget:
        config: PitrConfig = get_config().pitr
        if not config.enabled:
            raise PitrRefused("point-in-time recovery is not configured: set DATABASE_PITR_ENGINE=pgbackrest")
        params = connections[alias].get_connection_params()
        conninfo = {k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")}
        return cls(
            stanza=config.stanza,
            repo_path=config.repo_path,
            pg_path=Path(config.pg_path),
            pg_port=int(params.get("port") or 5432),
            socket_path=config.socket_path,
            pg_user=config.maintenance_user or params.get("user") or "postgres",
            conninfo=conninfo,
            retention_full=config.retention_full,
            run_as=config.run_as,
            pg_password=config.maintenance_password if config.maintenance_user else params.get("password") or "",
            repo_s3=config.repo_s3,
            s3_verify_tls=config.s3_verify_tls,
            s3_ca_file=config.s3_ca_file,
        )

    @property
    def repo_location(self) -> str:
        """Where the repository lives, for people: a folder or s3://bucket/path (never a credential)."""
        if self.repo_s3 is None:
            return str(self.repo_path / "repo")
        return f"s3://{self.repo_s3.bucket}{self._s3_repo_path()}"

    def _s3_repo_path(self) -> str:
        return "/" + "/".join(filter(None, [self.repo_s3.prefix.strip("/"), "pgbackrest"]))

    @property
    def config_file(self) -> Path:
        return self.repo_path / "pgbackrest.conf"

    @property
    def os_user(self) -> str:
        """The OS user pgBackRest runs as: DATABASE_PITR_RUN_AS, else postgres when root, else this user."""
        if self.run_as:
            return self.run_as
        return "postgres" if os.geteuid() == 0 else getpass.getuser()

    def archive_command(self) -> str:
        return f"pgbackrest --config={self.config_file} --stanza={self.stanza} archive-push %p"

    def managed_settings(self) -> dict[str, dict[str, str]]:
        """Return the keys dbops owns in pgbackrest.conf, per section (everything else there is the operator's)."""
        repo = self.repo_path
        return {
            "global": {
                **self._repository_settings(),
                "repo1-retention-full": str(self.retention_full),
                "log-path": str(repo / "log"),
                "lock-path": str(repo / "lock"),
                "spool-path": str(repo / "spool"),
            },
            self.stanza: {
                "pg1-path": str(self.pg_path),
                "pg1-port": str(self.pg_port),
                "pg1-socket-path": self.socket_path,
                "pg1-user": self.pg_user,
            },
        }

    def _repository_settings(self) -> dict[str, str]:
        if self.repo_s3 is None:  # repo1-type left to pgBackRest's default (posix) or to the operator
            return {"repo1-path": str(self.repo_path / "repo")}
        store = self.repo_s3
        endpoint = urlsplit(store.endpoint_url or f"https://s3.{store.region}.amazonaws.com")
        settings = {
            "repo1-type": "s3",
            "repo1-path": self._s3_repo_path(),
            "repo1-s3-bucket": store.bucket,
            "repo1-s3-endpoint": endpoint.hostname or "",
            "repo1-s3-region": store.region,
            # Virtual-host style needs DNS per bucket: S3-compatible stores on their own host answer path style.
            "repo1-s3-uri-style": "path" if store.endpoint_url else "host",
            "repo1-storage-port": str(endpoint.port or 443),
            "repo1-storage-verify-tls": "y" if self.s3_verify_tls else "n",
        }
        if self.s3_ca_file:
            settings["repo1-storage-ca-file"] = self.s3_ca_file
        if store.access_key:
            settings.update({"repo1-s3-key": store.access_key, "repo1-s3-key-secret": store.secret_key})
        else:  # an instance role: pgBackRest asks the metadata service, as boto3 does for the dumps
            settings["repo1-s3-key-type"] = "auto"
        return settings

    def config_text(self, current: str | None = None) -> str:
        """Return pgbackrest.conf: `current` with dbops' keys set (the operator's other lines kept), or a new one."""
        if current is None:
            current = (
                "# Written by dbops (manage.py pitr setup-check --fix). pgBackRest reads it; dbops passes --config.\n"
                "# Add your own keys (compression, encryption, ...): --fix only ever sets dbops' own.\n"
                "[global]\nlog-level-console=warn\nlog-level-file=info\nstart-fast=y\n"
            )
        return _with_settings(current, self.managed_settings())

    def config_differences(self, current: str | None) -> list[str]:
        """Name dbops' keys that `current` lacks or sets otherwise ([] when it is as dbops needs it)."""
        found = _parse_config(current or "")
        return [
            f"[{section}] {key}"
            for section, values in self.managed_settings().items()
            for key, value in values.items()
            if found.get(section, {}).get(key) != value
        ]

    def connect(self, timeout: float = 5.0) -> psycopg.Connection:
        return psycopg.connect(**self.conninfo, connect_timeout=max(2, int(timeout)), autocommit=True)


def _parse_config(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            sections.setdefault(section, {})
        elif "=" in line:
            key, _, value = line.partition("=")
            sections.setdefault(section, {})[key.strip()] = value.strip()
    return sections


def _with_settings(text: str, settings: dict[str, dict[str, str]]) -> str:
    """Set `settings` in the INI `text`, in place where a key exists, else at the end of its section."""
    lines = text.splitlines()
    pending = {section: dict(values) for section, values in settings.items()}
    out: list[str] = []
    section = ""

    def flush(name: str) -> None:
        for key, value in pending.pop(name, {}).items():
            out.append(f"{key}={value}")

    for raw in lines:
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            flush(section)
            section = line[1:-1].strip()
        elif "=" in line and not line.startswith("#"):
            key = line.partition("=")[0].strip()
            if key in pending.get(section, {}):
                out.append(f"{key}={pending[section].pop(key)}")
                continue
        out.append(raw)
    flush(section)
    for name in list(pending):
        if pending[name]:
            out += ["", f"[{name}]"]
            flush(name)
    return "\n".join(out).rstrip("\n") + "\n"


def _run_pgbackrest(
    target: PitrTarget, *args: str, timeout: float = 600, text: bool = True
) -> subprocess.CompletedProcess:
    binary = shutil.which("pgbackrest")
    if binary is None:
        raise PitrError("pgbackrest is not installed: install it on the database host (Debian: apt install pgbackrest)")
    command = [binary, f"--config={target.config_file}", f"--stanza={target.stanza}", *args]
    user = target.os_user
    if user != getpass.getuser():
        # runuser keeps the environment (PGPASSWORD); sudo is told to keep just that.
        if os.geteuid() == 0:
            command = ["runuser", "-u", user, "--", *command]
        else:
            command = ["sudo", "-n", "--preserve-env=PGPASSWORD", "-u", user, "--", *command]
    env = {**os.environ, "PGPASSWORD": target.pg_password} if target.pg_password else None
    try:
        return subprocess.run(  # noqa: S603 - pgbackrest with dbops' own arguments
            command, capture_output=True, text=text, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        raise PitrError(f"pgbackrest {args[0]} did not finish within {timeout:g} s") from None


def _failure(result: subprocess.CompletedProcess[str]) -> str:
    """Say why pgBackRest failed: its ERROR line (the cause), not the HINT or DETAIL that often comes last."""
    text = [line.strip() for line in (result.stderr or result.stdout or "").strip().splitlines() if line.strip()]
    errors = [line for line in text if "ERROR:" in line]
    chosen = errors[0] if errors else (text[-1] if text else f"exit {result.returncode}")
    hints = [line for line in text if line.startswith("HINT:")]
    return mask_url(chosen + (f" ({hints[0]})" if hints and hints[0] != chosen else ""))[:500]


def managed_provider(target: PitrTarget) -> str | None:
    """Name the managed service behind the database host, if it is one (they do PITR themselves)."""
    host = str(target.conninfo.get("host") or "").lower()
    return next((name for suffix, name in MANAGED_HOST_SUFFIXES.items() if suffix in host), None)


@dataclasses.dataclass(frozen=True)
class SetupLine:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _owned_folders(target: PitrTarget) -> None:
    local = ("log", "lock", "spool") if target.repo_s3 else ("repo", "log", "lock", "spool")
    for folder in (target.repo_path, *(target.repo_path / name for name in local)):
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(target.os_user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o750)


def _write_config(target: PitrTarget, text: str) -> None:
    """Write pgbackrest.conf readable by its OS user alone: it may hold the store's secret key."""
    descriptor = os.open(target.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as config:
        config.write(text)
    os.chmod(target.config_file, 0o600)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(target.os_user)
        os.chown(target.config_file, entry.pw_uid, entry.pw_gid)


def _stanza_info(target: PitrTarget) -> dict | None:
    result = _run_pgbackrest(target, "info", "--output=json", timeout=60)
    if result.returncode != 0:
        return None
    stanzas = json.loads(result.stdout or "[]")
    return next((s for s in stanzas if s.get("name") == target.stanza), None)


# pgBackRest's stanza status codes that mean "create the stanza" (missing path, missing data).
STANZA_MISSING = (1, 3)
_S3_ERROR = re.compile(r"<Code>(.*?)</Code>\s*<Message>(.*?)</Message>", re.S)


def _repository_problem(info: dict) -> str:
    """Return why pgBackRest cannot read the repository (an unreachable store, no bucket), or ""."""
    if info.get("status", {}).get("code") != 99:  # 99: "other", the repository itself failed
        return ""
    for repo in info.get("repo", []):
        message = repo.get("status", {}).get("message", "")
        if repo.get("status", {}).get("code") == 99 and message:
            store = _S3_ERROR.search(message)
            first = message.strip().splitlines()[0].rstrip(":")
            return mask_url(first + (f": {store.group(1)}: {store.group(2)}" if store else ""))[:500]
    return str(info["status"].get("message", "repository error"))


def setup_check(target: PitrTarget, *, fix: bool = False, progress: Progress = _quiet) -> list[SetupLine]:
    """Check (and with `fix`, do what dbops may do) everything PITR needs; each missing item says its fix."""
    provider = managed_provider(target)
    if provider:
        return [SetupLine("managed database", True, f"{provider} does point-in-time recovery itself: use its console")]
    lines = []
    binary = shutil.which("pgbackrest")
    version = ""
    if binary:
        version = subprocess.run([binary, "version"], capture_output=True, text=True, check=False).stdout  # noqa: S603
    lines.append(SetupLine("pgbackrest", bool(binary), version.strip() or "not found", "apt install pgbackrest"))
    if not binary:
        return lines
    current = target.config_file.read_text() if target.config_file.exists() else None
    differences = target.config_differences(current)
    if differences and fix:
        _owned_folders(target)
        _write_config(target, target.config_text(current))  # dbops' keys set, the operator's kept
        current = target.config_file.read_text()
        differences = target.config_differences(current)
    if current is None:
        detail = f"{target.config_file} missing"
    else:
        detail = str(target.config_file) + (f": differs in {', '.join(differences)}" if differences else "")
    lines.append(
        SetupLine(
            "configuration file",
            not differences,
            detail,
            "manage.py pitr setup-check --fix (sets dbops' keys, keeps your own)",
        )
    )
    try:
        with target.connect() as conn:
            wal_level, archive_mode, archive_command = conn.execute(
                "SELECT current_setting('wal_level'), current_setting('archive_mode'), "
                "current_setting('archive_command')"
            ).fetchone()
            pending_restart = conn.execute(
                "SELECT coalesce(string_agg(name, ', '), '') FROM pg_settings WHERE pending_restart"
            ).fetchone()[0]
            archive_timeout = conn.execute(
                "SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout'"
            ).fetchone()[0]
            maintenance = _maintenance_user_line(target, conn)
    except psycopg.Error as exc:  # the rest needs the server; the configuration file is written already
        cause = mask_url(str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)
        lines.append(SetupLine("server", False, cause, "start the server, or check DATABASE_URL"))
        return lines
    quoted = target.archive_command().replace("'", "''")
    lines += [
        SetupLine(
            "wal_level",
            wal_level in ("replica", "logical"),
            wal_level,
            "ALTER SYSTEM SET wal_level = 'replica'; restart",
        ),
        SetupLine(
            "archive_mode",
            archive_mode in ("on", "always"),
            archive_mode,
            "ALTER SYSTEM SET archive_mode = 'on'; restart",
        ),
        SetupLine(
            "archive_command",
            archive_command == target.archive_command(),
            archive_command or "(empty)",
            f"ALTER SYSTEM SET archive_command = '{quoted}'; SELECT pg_reload_conf();",
        ),
        SetupLine("restart", not pending_restart, pending_restart or "none pending", "restart the server"),
        # Changes become restorable only once their WAL segment is archived: on a quiet server that is the next
        # segment switch, which archive_timeout forces at least that often.
        SetupLine(
            "archive_timeout",
            0 < archive_timeout <= MAX_ARCHIVE_TIMEOUT,
            f"{archive_timeout} s" if archive_timeout else "0 (off: a quiet server may archive hours late)",
            f"ALTER SYSTEM SET archive_timeout = '60s'; SELECT pg_reload_conf();  (at most {MAX_ARCHIVE_TIMEOUT} s)",
        ),
        maintenance,
    ]
    if not all(line.ok for line in lines):
        return lines
    info = _stanza_info(target)
    problem = _repository_problem(info or {})
    if problem:
        where = f"{target.repo_location}: {problem}"
        lines.append(SetupLine("stanza", False, where, _repository_fix(target)))
        return lines
    if info is None or info.get("status", {}).get("code") in STANZA_MISSING:
        if fix:
            progress(f"creating stanza {target.stanza}")
            result = _run_pgbackrest(target, "stanza-create", timeout=120)
            if result.returncode != 0:
                lines.append(SetupLine("stanza", False, _failure(result), _local_access_fix(target)))
                return lines
        else:
            lines.append(SetupLine("stanza", False, f"{target.stanza} not created", "manage.py pitr setup-check --fix"))
            return lines
    lines.append(SetupLine("stanza", True, target.stanza))
    progress("pgbackrest check (switches WAL and waits for it to be archived)")
    result = _run_pgbackrest(target, "check", timeout=180)
    lines.append(
        SetupLine(
            "archiving works",
            result.returncode == 0,
            "a WAL segment was archived" if result.returncode == 0 else _failure(result),
            "see the server log for archive_command failures; " + _local_access_fix(target),
        )
    )
    return lines


def _repository_fix(target: PitrTarget) -> str:
    if target.repo_s3 is None:
        return f"make {target.repo_path / 'repo'} writable by {target.os_user}"
    return (
        f"create the bucket {target.repo_s3.bucket} and give DATABASE_BACKUP_S3_ACCESS_KEY_ID list/get/put/delete on "
        f"{target.repo_location} (docs/recovery.md has the policy); check DATABASE_BACKUP_S3_ENDPOINT_URL"
    )


def _local_access_fix(target: PitrTarget) -> str:
    """Say how pgBackRest reaches the server: as `pg_user` through the unix socket, from the OS user it runs as."""
    return (
        f"pgBackRest connects as {target.pg_user} through the socket in {target.socket_path} as the OS user "
        f"{target.os_user}: pg_hba.conf needs a `local` line for it (peer when the names match, else "
        "scram-sha-256 with DATABASE_PITR_PG_PASSWORD); see the pgBackRest log"
    )


def maintenance_grants(server_version: int) -> tuple[tuple[str, str, str], ...]:
    """Return what pgBackRest's database user needs when it is not a superuser: (kind, object, GRANT statement).

    Reading the data directory's settings, starting/stopping a backup, switching WAL, naming restore points and
    (start-fast=y) asking for a checkpoint; pg_monitor as non-superuser pgBackRest set-ups grant it (statistics).
    """
    if server_version >= 150000:
        functions = ("pg_backup_start(text, boolean)", "pg_backup_stop(boolean)")
        roles: tuple[str, ...] = ("pg_read_all_settings", "pg_monitor", "pg_checkpoint")
    else:
        functions = ("pg_start_backup(text, boolean, boolean)", "pg_stop_backup(boolean, boolean)")
        roles = ("pg_read_all_settings", "pg_monitor")
    functions += ("pg_switch_wal()", "pg_create_restore_point(text)")
    return tuple(("role", role, f"GRANT {role} TO {{user}}") for role in roles) + tuple(
        ("function", name, f"GRANT EXECUTE ON FUNCTION {name} TO {{user}}") for name in functions
    )


def _maintenance_user_line(target: PitrTarget, conn: psycopg.Connection) -> SetupLine:
    """Check pgBackRest's database user exists and holds what it needs (a superuser holds everything)."""
    user = target.pg_user
    name = "maintenance user"
    row = conn.execute("SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
    quoted = psycopg.sql.Identifier(user).as_string(conn)
    if row is None:
        return SetupLine(name, False, f"role {user} does not exist", f"CREATE ROLE {quoted} LOGIN; then the grants")
    if row[0]:
        return SetupLine(name, True, f"{user} (superuser)")
    server_version = conn.info.server_version
    missing = []
    for kind, obj, grant in maintenance_grants(server_version):
        holds = "pg_has_role(%s, %s, 'USAGE')" if kind == "role" else "has_function_privilege(%s, %s, 'EXECUTE')"
        if not conn.execute(f"SELECT {holds}", (user, obj)).fetchone()[0]:
            missing.append((obj, grant.format(user=quoted)))
    if not row[1]:
        missing.insert(0, ("LOGIN", f"ALTER ROLE {quoted} LOGIN"))
    if missing:
        return SetupLine(
            name,
            False,
            f"{user} lacks {', '.join(obj for obj, _grant in missing)}",
            "as a superuser: " + "; ".join(grant for _obj, grant in missing) + ";",
        )
    return SetupLine(name, True, f"{user} (not a superuser; holds every grant pgBackRest needs)")


def _epoch(value: float | None) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(value, tz=datetime.UTC) if value else None


def _archived_segments(target: PitrTarget) -> list[tuple[str, float]]:
    """Return the repository's archived WAL segment files (path in the repository, time archived), newest first.

    Listed through pgBackRest (`repo-ls`), so a repository in a bucket reads like a local one.
    """
    result = _run_pgbackrest(target, "repo-ls", f"archive/{target.stanza}", "--recurse", "--output=json", timeout=120)
    if result.returncode != 0:
        return []
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
        fetched = _run_pgbackrest(target, "repo-get", path, timeout=120, text=False)
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
    info = _stanza_info(target)
    if info is None:
        raise PitrError(f"pgbackrest info failed for stanza {target.stanza}: run manage.py pitr setup-check")
    problem = _repository_problem(info)
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
    last_archived = failing = None
    try:
        with target.connect() as conn:
            last_archived, last_failed, last_failed_wal = conn.execute(
                "SELECT last_archived_time, last_failed_time, last_failed_wal FROM pg_stat_archiver"
            ).fetchone()
        if last_failed and (last_archived is None or last_failed > last_archived):
            failing = f"archiving of {last_failed_wal} failed at {last_failed:%Y-%m-%d %H:%M:%S}"
    except psycopg.Error:
        pass
    earliest = min((b["stop"] for b in backups), default=None)
    newest_stop = max((b["stop"] for b in backups), default=None)
    segments = _archived_segments(target)
    last_commit = last_archived_commit(target, segments)
    if last_commit is not None:
        # PostgreSQL stops a time-targeted recovery at the first commit after the target, so it must see one: the
        # latest reachable moment is just before the newest archived commit.
        latest = max(filter(None, (last_commit - datetime.timedelta(microseconds=1), newest_stop)), default=None)
    else:  # no archive dbops can read: the archiving time, which may lie after the last restorable commit
        newest_segment = _epoch(max((archived_at for _path, archived_at in segments), default=None))
        latest = max(filter(None, (last_archived, newest_stop, newest_segment)), default=None)
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


def _record(kind: str, target: PitrTarget, *, database_up: bool = True, **fields) -> PitrRun:
    """Start a run's record; with the database down (an in-place restore) it is kept for the journal instead."""
    run = PitrRun(kind=kind, started_at=timezone.now(), stanza=target.stanza, **fields)
    with contextlib.suppress(KeyError, OSError):
        run.requested_by = getpass.getuser()
    if database_up:
        with contextlib.suppress(DatabaseError):
            run.save()
    return run


def _finish(
    run: PitrRun, status_: str, started: float, error: str = "", *, journal: Path | None = None, **details
) -> PitrRun:
    """End a run's record; when it cannot be saved (or `journal` is given: the database is down), journal it."""
    run.status, run.error = status_, error
    run.finished_at = timezone.now()
    run.duration_seconds = round(time.monotonic() - started, 3)
    run.details = {**run.details, **details}
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
    for saved, line in enumerate(lines):
        try:
            for entry in serializers.deserialize("python", [json.loads(line)]):
                entry.object.pk = None  # a restored history may already hold that id for another run
                entry.object.save()
        except DatabaseError:  # keep what is not saved yet, and only that, for the next time
            path.write_text("\n".join(lines[saved:]) + "\n")
            return saved
    path.unlink()
    return len(lines)


def backup(target: PitrTarget, *, backup_type: str = "full", progress: Progress = _quiet) -> PitrRun:
    """Take a pgBackRest backup (full, diff or incr) and record it with its label."""
    if backup_type not in BACKUP_TYPES:
        raise PitrRefused(f"backup type must be one of {', '.join(BACKUP_TYPES)}")
    started = time.monotonic()
    run = _record(PitrRun.Kind.BACKUP, target, backup_type=backup_type)
    progress(f"pgbackrest backup --type={backup_type}")
    result = _run_pgbackrest(target, "backup", f"--type={backup_type}", timeout=6 * 3600)
    if result.returncode != 0:
        _finish(run, PitrRun.Status.FAILED, started, _failure(result))
        raise PitrError(f"pgbackrest backup failed: {_failure(result)}")
    newest = (status(target)["backups"] or [{}])[-1]
    run.label = newest.get("label", "")
    return _finish(run, PitrRun.Status.SUCCEEDED, started, size_bytes=newest.get("size_bytes"))


def verify(target: PitrTarget, *, progress: Progress = _quiet) -> PitrRun:
    """Run `pgbackrest verify` (checksums of every backup file and archived WAL segment) and record it."""
    started = time.monotonic()
    run = _record(PitrRun.Kind.VERIFY, target)
    progress("pgbackrest verify")
    result = _run_pgbackrest(target, "verify", "--log-level-console=info", timeout=6 * 3600)
    if result.returncode != 0:
        _finish(run, PitrRun.Status.FAILED, started, _failure(result))
        raise PitrError(f"pgbackrest verify failed: {_failure(result)}")
    return _finish(run, PitrRun.Status.SUCCEEDED, started, output=result.stdout.strip()[-2000:])


# Connection failures that mean nothing listens there; anything else (a wrong password, a missing role) is an answer.
_NOT_LISTENING = ("connection refused", "no such file or directory", "could not connect", "timeout expired")


def _server_running(target: PitrTarget) -> bool:
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
    in_place_while_down = data_dir is None and not _server_running(target)
    journal = target.repo_path / JOURNAL_NAME if in_place_while_down else None
    run = _record(
        PitrRun.Kind.RESTORE,
        target,
        database_up=not in_place_while_down,
        target_time=target_time,
        data_dir=str(data_dir or target.pg_path),
    )

    def refuse(reason: str) -> PitrRefused:
        _finish(run, PitrRun.Status.REFUSED, started, reason, journal=journal)
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
        if os.geteuid() == 0:
            entry = pwd.getpwnam(target.os_user)
            os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        data_dir.chmod(0o700)
        # A copy must not archive into the live stanza's repository (its archiver would fail every minute).
        args += [f"--pg1-path={data_dir}", "--archive-mode=off"]
    progress(f"pgbackrest {' '.join(args)}")
    result = _run_pgbackrest(target, *args, timeout=6 * 3600)
    if result.returncode != 0:
        _finish(run, PitrRun.Status.FAILED, started, _failure(result), journal=journal)
        raise PitrError(f"pgbackrest restore failed: {_failure(result)}")
    folder = data_dir or target.pg_path
    start = f"pg_ctl -D {folder} -l {folder}/server.log start" + ("" if data_dir is None else ' -o "-p <free port>"')
    # In place too: the server is started on a free loopback port until it has replayed to the target and
    # promoted, then stopped for the operator (systemd, Patroni) to start as usual.
    progress("starting the restored cluster on a free port until it reaches the target")
    problem = _reaches_target(target, folder, archive=data_dir is None)
    if problem:
        _finish(run, PitrRun.Status.FAILED, started, problem, journal=journal, start_with=start)
        raise PitrError(f"the restored cluster did not reach {target_time.isoformat()}: {problem}")
    return _finish(run, PitrRun.Status.SUCCEEDED, started, journal=journal, start_with=start, reached_target="yes")


def _reaches_target(target: PitrTarget, data_dir: Path, *, archive: bool, timeout: float = 600) -> str:
    """Start the restored cluster on a free port, wait until recovery ended at the target and it promoted, stop it.

    Return "" when it did, else the server's own reason (e.g. "recovery ended before configured recovery target
    was reached"). A copy (`archive` False) must not archive into the live stanza; in place it must, or the new
    timeline's history file never reaches the repository.
    """
    port = free_port()
    log = data_dir / "dbops-restore-check.log"
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data_dir}"
    if not archive:
        options += " -c archive_mode=off"
    as_user = ["runuser", "-u", target.os_user, "--"] if os.geteuid() == 0 else []

    def pg_ctl(*args: str) -> int:
        command = [*as_user, str(find_bindir() / "pg_ctl"), "-D", str(data_dir), *args]
        return subprocess.run(command, capture_output=True, check=False).returncode  # noqa: S603 - our pg_ctl

    started = pg_ctl("-l", str(log), "-o", options, "-w", "-t", str(int(timeout)), "start")
    try:
        if started != 0:
            return _server_log_reason(log) or "the restored server did not start"
        conninfo = {**target.conninfo, "host": "127.0.0.1", "port": port}
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(**conninfo, connect_timeout=5, autocommit=True) as conn:
                    if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        return ""
            except psycopg.OperationalError:
                if pg_ctl("status"):
                    return _server_log_reason(log) or "the restored server stopped during recovery"
            if time.monotonic() > deadline:
                return f"still recovering after {timeout:.0f} s"
            time.sleep(0.2)
    finally:
        pg_ctl("stop", "-m", "fast", "-w")


def _server_log_reason(log: Path) -> str:
    """Return the server's FATAL (or last) line from its log, for the record and the message."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    fatal = [line for line in lines if "FATAL:" in line or "PANIC:" in line]
    return mask_url((fatal[0] if fatal else lines[-1] if lines else "")[:500])


def window_summary() -> dict | None:
    """Return the recoverable window for the dashboard and health (None when PITR is not configured)."""
    if not get_config().pitr.enabled:
        return None
    try:
        report = status(PitrTarget.from_settings())
    except DbopsError as exc:
        return {"error": str(exc)}
    return {
        "earliest": report["earliest_restorable"],
        "latest": report["latest_restorable"],
        "backups": len(report["backups"]),
        "archiver_failing": report["archiver_failing"],
    }

"""`setup_check`: everything PITR needs, checked (and with --fix done where dbops may), each gap with its fix."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import psycopg
import psycopg.sql

from dbops.backups.pitr.pgbackrest import STANZA_MISSING, failure, repository_problem, run_pgbackrest, stanza_info
from dbops.backups.pitr.target import PitrTarget, managed_provider
from dbops.conf import mask_url
from dbops.database.rows import one_row
from dbops.osuser import give_to
from dbops.progress import Progress
from dbops.progress import quiet as _quiet

# The longest archive_timeout setup-check accepts: how stale the newest restorable moment may get on a quiet server.
MAX_ARCHIVE_TIMEOUT = 300


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
        give_to(target.os_user, folder, 0o750)


def _write_config(target: PitrTarget, text: str) -> None:
    """Write pgbackrest.conf readable by its OS user alone: it may hold the store's secret key."""
    descriptor = os.open(target.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as config:
        config.write(text)
    give_to(target.os_user, target.config_file, 0o600)


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
            wal_level, archive_mode, archive_command = one_row(
                conn.execute(
                    "SELECT current_setting('wal_level'), current_setting('archive_mode'), "
                    "current_setting('archive_command')"
                )
            )
            pending_restart = one_row(
                conn.execute("SELECT coalesce(string_agg(name, ', '), '') FROM pg_settings WHERE pending_restart")
            )[0]
            archive_timeout = one_row(
                conn.execute("SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout'")
            )[0]
        with target.connect(dbname=target.pg_database) as conn:
            maintenance = _maintenance_user_line(target, conn)  # function grants live in each database
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
    info = stanza_info(target)
    problem = repository_problem(info or {})
    if problem:
        where = f"{target.repo_location}: {problem}"
        lines.append(SetupLine("stanza", False, where, _repository_fix(target)))
        return lines
    if info is None or info.get("status", {}).get("code") in STANZA_MISSING:
        if fix:
            progress(f"creating stanza {target.stanza}")
            result = run_pgbackrest(target, "stanza-create", timeout=120)
            if result.returncode != 0:
                lines.append(SetupLine("stanza", False, failure(result), _local_access_fix(target)))
                return lines
        else:
            lines.append(SetupLine("stanza", False, f"{target.stanza} not created", "manage.py pitr setup-check --fix"))
            return lines
    lines.append(SetupLine("stanza", True, target.stanza))
    progress("pgbackrest check (switches WAL and waits for it to be archived)")
    result = run_pgbackrest(target, "check", timeout=180)
    lines.append(
        SetupLine(
            "archiving works",
            result.returncode == 0,
            "a WAL segment was archived" if result.returncode == 0 else failure(result),
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
    functions: tuple[str, ...]
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
        if not one_row(conn.execute(f"SELECT {holds}", (user, obj)))[0]:
            missing.append((obj, grant.format(user=quoted)))
    if not row[1]:
        missing.insert(0, ("LOGIN", f"ALTER ROLE {quoted} LOGIN"))
    if missing:
        return SetupLine(
            name,
            False,
            f"{user} lacks {', '.join(obj for obj, _grant in missing)}",
            f"as a superuser, connected to database {target.pg_database} (the one pgBackRest uses): "
            + "; ".join(grant for _obj, grant in missing)
            + ";",
        )
    return SetupLine(name, True, f"{user} (not a superuser; holds every grant pgBackRest needs)")

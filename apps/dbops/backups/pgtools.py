"""PostgreSQL's client programs (pg_restore, psql) as dbops runs them: argv builders and the runs themselves.

django-dbbackup's connector takes the dumps (its public `create_dump`); restoring into a scratch database or
exactly into the live one is dbops' own, built here as argv lists (no shell) with the password in PGPASSWORD,
never on the command line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from psycopg.conninfo import make_conninfo

from dbops.exceptions import BackupError, VerificationFailed

CHUNK = 1024 * 1024
# libpq parameters a Django entry may carry in OPTIONS that the client programs must use too (TLS, routing).
LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "target_session_attrs", "passfile", "service")


def conninfo(settings: Mapping[str, Any], *, dbname: str | None = None) -> str:
    """Return a libpq connection string for a Django database entry (no password: see `client_env`)."""
    options = settings.get("OPTIONS") or {}
    params = {
        "host": settings.get("HOST") or None,
        "port": str(settings["PORT"]) if settings.get("PORT") else None,
        "user": settings.get("USER") or None,
        "dbname": dbname or settings.get("NAME") or None,
        **{key: str(options[key]) for key in LIBPQ_OPTIONS if options.get(key)},
    }
    return make_conninfo(**{key: value for key, value in params.items() if value})


def client_env(settings: Mapping[str, Any], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment for a client program: `base` (default: this process') plus PGPASSWORD when set."""
    env = dict(os.environ if base is None else base)
    if settings.get("PASSWORD"):
        env["PGPASSWORD"] = str(settings["PASSWORD"])
    return env


def pg_restore_argv(binary: str, settings: Mapping[str, Any], *, dbname: str, use_list: str = "") -> list[str]:
    """pg_restore of a custom-format archive (stdin) into `dbname`, in one transaction, as django-dbbackup does.

    With `use_list`, only the archive entries that list names (see `without_system_grants`).
    """
    return [
        binary,
        f"--dbname={conninfo(settings, dbname=dbname)}",
        "--no-password",
        "--single-transaction",
        "--clean",
        "--if-exists",
        *([f"--use-list={use_list}"] if use_list else []),
    ]


def pg_restore_to_sql_argv(binary: str, *, use_list: str = "") -> list[str]:
    """pg_restore writing the archive (stdin) as SQL on stdout, dropping each object before it creates it."""
    return [binary, "--clean", "--if-exists", "--file=-", *([f"--use-list={use_list}"] if use_list else [])]


# An archive's table of contents line for privileges on a system object, e.g.
# "3346; 0 0 ACL pg_catalog FUNCTION pg_create_restore_point(text) postgres".
SYSTEM_GRANT = re.compile(r"^\s*\d+;\s*\d+\s+\d+\s+ACL\s+pg_catalog\s")


def without_system_grants(listing: str) -> str:
    """Return `pg_restore --list` output without the GRANTs on system objects.

    pg_dump carries GRANTs on system functions into every dump (pgBackRest's maintenance user is granted
    pg_backup_start & co. in the database it connects to): restoring them needs a superuser and a role of that
    name, so verification and restores failed. They are the server's set-up, not the application's data.
    """
    return "".join(line for line in listing.splitlines(keepends=True) if not SYSTEM_GRANT.match(line))


@contextlib.contextmanager
def restore_list(source: IO[bytes], *, env: Mapping[str, str]):
    """Yield the path of a pg_restore list of `source`'s archive without system GRANTs (a private temp file)."""
    import tempfile

    source.seek(0)
    process = subprocess.Popen(  # noqa: S603 - a resolved tool, the archive streamed to stdin
        [tool("pg_restore"), "--list"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
    )
    assert process.stdin and process.stdout and process.stderr  # noqa: S101 - all three are pipes
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dbops-list") as executor:
        feed = executor.submit(copy_and_close, source, process.stdin)
        errors = executor.submit(process.stderr.read)
        listed = process.stdout.read()
        feed.result()
        process.wait()
    source.seek(0)
    if process.returncode:
        detail = errors.result().decode(errors="replace").strip().splitlines()
        raise VerificationFailed(
            f"pg_restore failed: {detail[-1] if detail else process.returncode} (reading the archive)"
        )
    with tempfile.NamedTemporaryFile("w", prefix="dbops-restore-", suffix=".list") as listing:
        listing.write(without_system_grants(listed.decode()))
        listing.flush()
        yield listing.name


def psql_script_argv(binary: str, settings: Mapping[str, Any]) -> list[str]:
    """Psql running a script from stdin in ONE transaction that stops at the first error."""
    return [
        binary,
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        f"--dbname={conninfo(settings)}",
        "--no-password",
    ]


def tool(name: str) -> str:
    """Return the path of a PostgreSQL client program, or say in one line how to install it."""
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools (Debian: postgresql-client).")
    return path


def tool_major(name: str) -> int:
    """Return the major version of a client program (`pg_dump --version`)."""
    path = tool(name)
    out = subprocess.run(  # noqa: S603 - a resolved tool path and a fixed argument
        [path, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if not match:
        raise BackupError(f"cannot read the version of {path}: {out.strip()!r}")
    return int(match.group(1))


def copy_and_close(source: IO[bytes], sink: IO[bytes]) -> None:
    """Copy `source` into a program's stdin and close it; a program that stopped early just stops the copy."""
    try:
        shutil.copyfileobj(source, sink, CHUNK)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


def run_with_input(argv: list[str], source: IO[bytes], *, env: Mapping[str, str]) -> tuple[int, bytes]:
    """Run `argv` with `source` streamed to its stdin (never whole in memory); return its exit code and stderr."""
    process = subprocess.Popen(  # noqa: S603 - a resolved client program, argv built above
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(env)
    )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbops-stderr") as executor:
        errors = executor.submit(process.stderr.read)  # type: ignore[union-attr]
        copy_and_close(source, process.stdin)  # type: ignore[arg-type]
        process.wait()
        return process.returncode, errors.result()

"""Run a program as the database server's OS user, and hand it the files and folders it must own.

PostgreSQL's tools (initdb, pg_ctl) refuse root, and pgBackRest must run as the user that owns the data
directory. As root dbops switches with `runuser` (it keeps the environment, PGPASSWORD included); as another user
it asks `sudo -n` to keep only PGPASSWORD; as that user already it runs the program as it is. No shell is ever
involved: every argument reaches the program as one argv entry.
"""

from __future__ import annotations

import getpass
import os
import pwd
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def is_root() -> bool:
    return os.geteuid() == 0


def switch_user_argv(user: str, argv: Sequence[str], *, root: bool, current_user: str) -> list[str]:
    """Return `argv` prefixed so that it runs as `user` (pure: `root` and `current_user` are given)."""
    if user == current_user:
        return list(argv)
    if root:
        return ["runuser", "-u", user, "--", *argv]
    return ["sudo", "-n", "--preserve-env=PGPASSWORD", "-u", user, "--", *argv]


def as_user(user: str, argv: Sequence[str]) -> list[str]:
    """Return `argv` prefixed so that it runs as `user` from this process."""
    return switch_user_argv(user, argv, root=is_root(), current_user=getpass.getuser())


def run_as(
    user: str,
    argv: Sequence[str],
    *,
    timeout: float,
    password: str = "",
    text: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `argv` as `user` and wait; `password` reaches it as PGPASSWORD, never on the command line.

    Raises `subprocess.TimeoutExpired` past `timeout` (the caller says what did not finish).
    """
    environment = dict(os.environ if env is None else env)
    if password:
        environment["PGPASSWORD"] = password
    return subprocess.run(  # noqa: S603 - a program dbops chose, arguments as argv, no shell
        as_user(user, argv), capture_output=True, text=text, timeout=timeout, check=False, env=environment
    )


def give_to(user: str, path: Path | str, mode: int | None = None) -> None:
    """As root make `user` the owner of `path` (a folder or file the server's tools write); set `mode` if given."""
    if is_root():
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    if mode is not None:
        os.chmod(path, mode)

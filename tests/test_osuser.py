"""Running a program as the database server's OS user: the argv prefix for each case, with no shell."""

from __future__ import annotations

import pytest

from dbops.osuser import switch_user_argv

pytestmark = pytest.mark.pure


def test_switch_user_argv__the_same_user_runs_the_program_as_it_is():
    assert switch_user_argv("postgres", ["pg_ctl", "status"], root=False, current_user="postgres") == [
        "pg_ctl",
        "status",
    ]


def test_switch_user_argv__root_uses_runuser_which_keeps_the_environment():
    assert switch_user_argv("postgres", ["pg_ctl", "-D", "/a b"], root=True, current_user="root") == [
        "runuser",
        "-u",
        "postgres",
        "--",
        "pg_ctl",
        "-D",
        "/a b",
    ]


def test_switch_user_argv__another_user_asks_sudo_to_keep_only_pgpassword_and_never_prompts():
    argv = switch_user_argv("postgres", ["pgbackrest", "info"], root=False, current_user="deploy")
    assert argv == ["sudo", "-n", "--preserve-env=PGPASSWORD", "-u", "postgres", "--", "pgbackrest", "info"]

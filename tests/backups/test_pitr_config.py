"""PITR's pure parts: pgbackrest.conf merged in place, pgBackRest's argv, and pg_ctl's -o text shell-quoted."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from dbops.backups.pitr.ini import parse_config, with_settings
from dbops.backups.pitr.pgbackrest import pgbackrest_argv
from dbops.backups.pitr.restore import server_options
from dbops.backups.pitr.target import PitrTarget

pytestmark = pytest.mark.pure

OPERATORS = """# mine
[global]
compress-type=zst
repo1-path=/old

[dbops]
pg1-path=/old/data
"""


def target(**overrides) -> PitrTarget:
    values = {
        "stanza": "dbops",
        "repo_path": Path("/srv/pgbackrest"),
        "pg_path": Path("/var/lib/postgresql/15/main"),
        "pg_port": 5432,
        "socket_path": "/var/run/postgresql",
        "pg_user": "backup",
        "conninfo": {"password": "secret"},
        "pg_password": "secret",
    }
    return PitrTarget(**{**values, **overrides})


def test_with_settings__sets_dbops_keys_in_place_and_keeps_the_operators_own():
    merged = with_settings(
        OPERATORS, {"global": {"repo1-path": "/srv/repo", "log-path": "/srv/log"}, "new": {"a": "1"}}
    )
    parsed = parse_config(merged)
    assert parsed["global"] == {"compress-type": "zst", "repo1-path": "/srv/repo", "log-path": "/srv/log"}
    assert parsed["dbops"] == {"pg1-path": "/old/data"}
    assert parsed["new"] == {"a": "1"}
    assert merged.startswith("# mine\n[global]\ncompress-type=zst\nrepo1-path=/srv/repo\n")


def test_config_differences__name_only_dbops_keys_that_differ():
    pitr = target()
    assert pitr.config_differences(pitr.config_text()) == []
    changed = pitr.config_text().replace("pg1-port=5432", "pg1-port=5999")
    assert pitr.config_differences(changed) == ["[dbops] pg1-port"]
    assert "compress-type=zst" in pitr.config_text(OPERATORS)


def test_pgbackrest_argv__config_and_stanza_first_and_no_password():
    argv = pgbackrest_argv("/usr/bin/pgbackrest", target(), "info", "--output=json")
    assert argv == [
        "/usr/bin/pgbackrest",
        "--config=/srv/pgbackrest/pgbackrest.conf",
        "--stanza=dbops",
        "info",
        "--output=json",
    ]
    assert "secret" not in " ".join(argv)


@pytest.mark.parametrize("folder", ["/srv/r$(id>/srv/owned)", "/srv/with space", "/srv/quote'd"])
def test_server_options__a_hostile_or_spaced_path_stays_one_word_for_the_shell(folder):
    text = server_options(5999, Path(folder), archive=False)
    assert shlex.split(text) == [
        "-p",
        "5999",
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={folder}",
        "-c",
        "archive_mode=off",
    ]
    assert "archive_mode" not in server_options(5999, Path(folder), archive=True)

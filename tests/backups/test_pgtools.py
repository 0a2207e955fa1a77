"""The client programs' command lines: built as argv (no shell), the password only in the environment."""

from __future__ import annotations

import pytest

from dbops.backups import pgtools

pytestmark = pytest.mark.pure

ENTRY = {
    "HOST": "db.internal",
    "PORT": 5433,
    "USER": "app",
    "PASSWORD": "pa ss'$(id)",
    "NAME": "shop",
    "OPTIONS": {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/ca.pem", "pool": {"min_size": 2}},
}


def test_conninfo__carries_host_port_user_database_and_tls_but_never_the_password():
    info = pgtools.conninfo(ENTRY)
    assert "host=db.internal" in info and "port=5433" in info and "user=app" in info and "dbname=shop" in info
    assert "sslmode=verify-full" in info and "sslrootcert=/etc/ssl/ca.pem" in info
    assert "pa ss" not in info and "pool" not in info
    assert "dbname=scratch" in pgtools.conninfo(ENTRY, dbname="scratch")


def test_client_env__gives_the_password_as_pgpassword_only():
    env = pgtools.client_env(ENTRY, base={"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "PGPASSWORD": "pa ss'$(id)"}
    assert "PGPASSWORD" not in pgtools.client_env({**ENTRY, "PASSWORD": ""}, base={})


def test_pg_restore_argv__one_transaction_into_the_named_database_each_value_one_argument():
    argv = pgtools.pg_restore_argv("/usr/bin/pg_restore", ENTRY, dbname="dbops_verify_1")
    assert argv[0] == "/usr/bin/pg_restore"
    assert argv[1].startswith("--dbname=") and "dbname=dbops_verify_1" in argv[1]
    assert argv[2:] == ["--no-password", "--single-transaction", "--clean", "--if-exists"]
    assert not any("pa ss" in part for part in argv)


def test_psql_and_pg_restore_to_sql__stop_at_the_first_error_in_one_transaction():
    psql = pgtools.psql_script_argv("psql", ENTRY)
    assert psql[:6] == ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
    assert psql[-1] == "--no-password" and "dbname=shop" in psql[-2]
    assert pgtools.pg_restore_to_sql_argv("pg_restore") == ["pg_restore", "--clean", "--if-exists", "--file=-"]


def test_conninfo__a_multi_host_entry_keeps_every_host():
    assert "host=a.internal,b.internal" in pgtools.conninfo({**ENTRY, "HOST": "a.internal,b.internal", "PORT": ""})


LISTING = """;
; Archive created at 2026-12-03 07:40:00 UTC
;
3346; 0 0 ACL pg_catalog FUNCTION pg_create_restore_point(text) postgres
3347; 0 0 ACL pg_catalog FUNCTION pg_backup_start(label text, fast boolean) postgres
214; 1259 16388 TABLE public t postgres
3350; 0 16388 ACL public TABLE t postgres
3339; 0 16388 TABLE DATA public t postgres
"""


def test_without_system_grants__drops_grants_on_system_objects_and_keeps_the_applications():
    kept = pgtools.without_system_grants(LISTING)
    assert "pg_catalog" not in kept
    assert "214; 1259 16388 TABLE public t postgres" in kept
    assert "3350; 0 16388 ACL public TABLE t postgres" in kept  # the application's own grants are data
    assert "3339; 0 16388 TABLE DATA public t postgres" in kept


def test_pg_restore_argv__a_list_file_restricts_the_restore():
    settings = {"NAME": "app", "HOST": "db", "PORT": 5432, "USER": "app", "PASSWORD": "pw"}
    argv = pgtools.pg_restore_argv("pg_restore", settings, dbname="scratch", use_list="restore.list")
    assert argv[-1] == "--use-list=restore.list" and "pw" not in " ".join(argv)
    assert pgtools.pg_restore_to_sql_argv("pg_restore", use_list="restore.list")[-1] == "--use-list=restore.list"
    assert not any(a.startswith("--use-list") for a in pgtools.pg_restore_argv("pg_restore", settings, dbname="s"))

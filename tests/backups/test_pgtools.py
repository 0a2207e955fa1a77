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

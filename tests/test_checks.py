"""System checks: ids are unique, and each fires on the condition it names."""

from __future__ import annotations

import dataclasses
import re

import pytest
from django.core import checks
from django.db import connection

from dbops import checks as dbops_checks
from tests.conftest import reconfigured_pool

pytestmark = pytest.mark.pure


def test_checks__ids_are_unique_and_namespaced():
    ids = [
        dbops_checks.E000.id,
        dbops_checks.W001.id,
        dbops_checks.W002_ID,
        dbops_checks.W003.id,
        dbops_checks.W004.id,
        dbops_checks.E001_ID,
        dbops_checks.E002_ID,
        dbops_checks.E003_ID,
        dbops_checks.E004_ID,
        dbops_checks.E005_ID,
        dbops_checks.W006_ID,
        dbops_checks.W007_ID,
        dbops_checks.W008_ID,
    ]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("dbops.") for i in ids)


def test_checks__a_healthy_test_setup_reports_nothing_from_dbops():
    messages = checks.run_checks()
    assert [m.id for m in messages if m.id and m.id.startswith("dbops.")] == []


def test_check_psycopg_implementation__binary_driver_passes():
    import psycopg

    assert psycopg.pq.__impl__ in ("binary", "c")
    assert dbops_checks.check_psycopg_implementation() == []


def test_check_engine__sqlite_in_development_warns(settings):
    from dbops.conf import from_env
    from tests import PROJECT_DIR

    settings.DBOPS = from_env({"DJANGO_ENV": "development", "DATABASE_URL": "sqlite:///x.db"}, base_dir=PROJECT_DIR)
    assert [m.id for m in dbops_checks.check_engine_outside_strict_environments()] == [dbops_checks.W002_ID]


def test_check_pool_covers_threads__fires_when_threads_exceed_pool(settings):
    settings.DBOPS = dataclasses.replace(settings.DBOPS, web_threads=16)
    with reconfigured_pool(pool={"min_size": 1, "max_size": 4}):
        messages = dbops_checks.check_pool_covers_threads()
    assert [m.id for m in messages] == [dbops_checks.E001_ID]
    assert "pool max size 4 is below GUNICORN_THREADS=16" in messages[0].msg


@pytest.mark.database
@pytest.mark.django_db
def test_check_pool_fits_server__compares_with_live_max_connections(settings):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('max_connections')::int")
        max_connections = cursor.fetchone()[0]
    pool_max = connection.settings_dict["OPTIONS"]["pool"]["max_size"]

    settings.DBOPS = dataclasses.replace(settings.DBOPS, web_workers=1)
    assert dbops_checks.check_pool_fits_server(databases=["default"]) == []

    settings.DBOPS = dataclasses.replace(settings.DBOPS, web_workers=max_connections // pool_max + 1)
    messages = dbops_checks.check_pool_fits_server(databases=["default"])
    assert [m.id for m in messages] == [dbops_checks.E002_ID]
    assert dbops_checks.check_pool_fits_server(databases=None) == []


@pytest.mark.database
@pytest.mark.django_db
def test_checks__the_whole_project_has_no_errors():
    """Every Django check (admin, models, urls, dbops) passes: what `manage.py check` runs in CI and deploys."""
    errors = [m for m in checks.run_checks(include_deployment_checks=False) if m.is_serious()]
    assert errors == []


def test_metrics_access__strict_environments_need_the_token_or_say_why_not(settings):
    strict = dataclasses.replace(
        settings.DBOPS, environment="production", health_token="", metrics_allow_loopback=False
    )
    settings.DBOPS = strict
    assert dbops_checks.check_metrics_access() == [dbops_checks.W003]
    settings.DBOPS = dataclasses.replace(strict, metrics_allow_loopback=True)
    assert dbops_checks.check_metrics_access() == [dbops_checks.W004]
    settings.DBOPS = dataclasses.replace(strict, health_token="t" * 40)
    assert dbops_checks.check_metrics_access() == []


@pytest.mark.parametrize(
    ("host", "sslmode", "warned"),
    [
        ("db.internal", None, True),
        ("db.internal", "prefer", True),
        ("db.internal", "verify-full", False),
        ("127.0.0.1", None, False),
        ("/var/run/postgresql", None, False),
        ("10.0.0.5,127.0.0.1", "require", False),
    ],
)
def test_database_tls__a_network_database_without_required_tls_is_named(settings, host, sslmode, warned):
    from django.db import connections

    settings.DBOPS = dataclasses.replace(settings.DBOPS, environment="production")
    options = connections["default"].settings_dict["OPTIONS"]
    saved = (connections["default"].settings_dict["HOST"], options.get("sslmode"))
    connections["default"].settings_dict["HOST"] = host
    options.pop("sslmode", None)
    if sslmode:
        options["sslmode"] = sslmode
    try:
        messages = dbops_checks.check_database_tls()
    finally:
        connections["default"].settings_dict["HOST"] = saved[0]
        options.pop("sslmode", None)
        if saved[1] is not None:
            options["sslmode"] = saved[1]
    assert [m.id for m in messages] == ([dbops_checks.W005_ID] if warned else [])


@pytest.mark.parametrize(("pool_timeout", "warned"), [("2", True), ("5", False)])
def test_pool_timeout__with_several_hosts_it_must_exceed_the_connect_timeout(settings, pool_timeout, warned):
    from dbops.conf import from_env
    from tests import PROJECT_DIR

    settings.DBOPS = from_env(
        {
            "DJANGO_ENV": "development",
            "DATABASE_URL": "postgres://app:pw@node1:5432,node2:5432/app?target_session_attrs=read-write",
            "DATABASE_CONNECT_TIMEOUT": "2",
            "DATABASE_POOL_TIMEOUT": pool_timeout,
        },
        base_dir=PROJECT_DIR,
    )
    messages = dbops_checks.check_pool_timeout_above_connect_timeout()
    assert [m.id for m in messages] == ([dbops_checks.W008_ID] if warned else [])
    if warned:
        assert "DATABASE_POOL_TIMEOUT (2 s) is not above DATABASE_CONNECT_TIMEOUT (2 s)" in messages[0].msg


@pytest.mark.database
@pytest.mark.django_db
def test_check_deploy__reports_the_connection_budget_without_database_options(settings):
    """`check --deploy` runs no check tagged database: E002 must still be there (the site's own deploy gate)."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.DBOPS = dataclasses.replace(settings.DBOPS, web_workers=60)
    with pytest.raises(SystemCheckError, match=r"dbops\.E002.*WEB_CONCURRENCY=60"):
        call_command("check", "--deploy")


@pytest.mark.database
@pytest.mark.django_db
def test_check_deploy__an_unreachable_server_is_a_warning_not_silence(monkeypatch):
    import psycopg

    def unreachable(alias, *, timeout):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(dbops_checks, "server_connection_limit", unreachable)
    messages = dbops_checks.check_pool_fits_server_on_deploy(databases=None)
    assert [m.id for m in messages] == [dbops_checks.W010_ID]
    assert "was not checked" in messages[0].msg
    assert dbops_checks.check_pool_fits_server_on_deploy(databases=["default"]) == []  # --database runs E002


def test_probes__stay_plain_http_under_ssl_redirect_wherever_mounted(settings, client):
    from dbops.health.probes import exempt_probes_from_ssl_redirect, redirected_probe_paths

    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = []
    assert redirected_probe_paths() == ["/health/live", "/health/ready", "/metrics"]
    messages = dbops_checks.check_probes_not_redirected()
    assert [m.id for m in messages] == [dbops_checks.W009_ID] * 3

    exempt_probes_from_ssl_redirect(settings)
    assert redirected_probe_paths() == [] and dbops_checks.check_probes_not_redirected() == []
    for path in ("health/live", "ops/health/ready", "ops/metrics"):  # under any prefix
        assert any(re.search(pattern, path) for pattern in settings.SECURE_REDIRECT_EXEMPT)
    assert not any(re.search(pattern, "ops/health/") for pattern in settings.SECURE_REDIRECT_EXEMPT)
    assert client.get("/health/live").status_code == 200  # not 301, through Django's SecurityMiddleware
    assert client.get("/admin/login/").status_code == 301  # everything else is still redirected


def test_backups_signed__strict_environments_without_a_signing_key_are_warned(settings):
    strict = dataclasses.replace(settings.DBOPS, environment="production", backup_enabled=True, backup_signing_key="")
    settings.DBOPS = strict
    assert [m.id for m in dbops_checks.check_backups_signed()] == [dbops_checks.W011_ID]
    settings.DBOPS = dataclasses.replace(strict, backup_signing_key="s" * 40)
    assert dbops_checks.check_backups_signed() == []
    settings.DBOPS = dataclasses.replace(strict, environment="development")
    assert dbops_checks.check_backups_signed() == []


def test_metrics_public__strict_environments_are_warned(settings):
    settings.DBOPS = dataclasses.replace(settings.DBOPS, environment="production", metrics_public=True)
    assert [m.id for m in dbops_checks.check_metrics_access()] == ["dbops.W012"]

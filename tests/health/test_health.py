"""Health checks and status endpoints against the real cluster, with real faults."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from dbops import views
from tests.conftest import reconfigured_pool, test_database_connection

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]
TOKEN = "health-token-0123456789"


@pytest.fixture(autouse=True)
def health_settings(settings):
    """Fresh readiness answers and a known token for every test."""
    from tests.factories import BackupRecordFactory

    settings.DBOPS = dataclasses.replace(settings.DBOPS, health_token=TOKEN)
    views.ready_cache._value = None
    BackupRecordFactory()  # a fresh verified backup: the backup check is tested in test_backups
    return settings


def set_thresholds(settings, **changes):
    settings.DBOPS = dataclasses.replace(settings.DBOPS, health=dataclasses.replace(settings.DBOPS.health, **changes))


def full_report(client) -> tuple[int, dict]:
    # The token, not a session: a session lookup would itself wait for a pool connection.
    response = client.get(reverse("dbops:health"), HTTP_ACCEPT="application/json", HTTP_AUTHORIZATION="Bearer " + TOKEN)
    return response.status_code, json.loads(response.content)


def direct_connection() -> psycopg.Connection:
    """Open a plain autocommit connection to the test database, outside Django's pool."""
    return test_database_connection()


def test_health__every_check_passes_on_a_healthy_cluster(client):
    status, report = full_report(client)
    assert status == 200, report
    assert set(report.values()) == {"OK"}
    # Readable names, not dataclass reprs like DatabaseLatency(alias='default').
    assert set(report) == {
        "Database latency (default)",
        "Connection pool (default)",
        "Pending migrations (default)",
        "PostgreSQL server (default)",
        "Circuit breaker (default)",
        "Backup freshness (default)",
        "Database insights (default)",
    }
    response = client.get(reverse("dbops:health_ready"))
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


@pytest.mark.system
def test_readiness__stopped_cluster_answers_503_within_the_budget(client, pg_cluster):
    pg_cluster.stop(mode="immediate")
    started = time.monotonic()
    response = client.get(reverse("dbops:health_ready"))
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert "DatabaseLatency" in response.json()["failing"]
    assert elapsed < 3.0  # budget (DBOPS_HEALTH_PROBE_TIMEOUT=2 s) plus scheduling slack


@pytest.mark.system
def test_readiness__reuses_its_answer_for_a_few_seconds(client, pg_cluster, settings):
    set_thresholds(settings, ready_cache_seconds=30)
    assert client.get(reverse("dbops:health_ready")).status_code == 200
    pg_cluster.stop(mode="immediate")
    assert client.get(reverse("dbops:health_ready")).status_code == 200  # cached, no database load
    views.ready_cache._value = None
    assert client.get(reverse("dbops:health_ready")).status_code == 503


def test_health__full_pool_is_a_warning_and_readiness_does_not_queue_for_it(client, hold_connections):
    with reconfigured_pool(pool={"min_size": 1, "max_size": 2, "timeout": 10}), hold_connections(2):
        before = connection.pool.get_stats()  # the holders' own checkouts
        response = client.get(reverse("dbops:health_ready"))
        status, report = full_report(client)
        stats = connection.pool.get_stats()

    assert response.status_code == 200  # busy is not down
    assert stats.get("requests_queued", 0) == before.get("requests_queued", 0)  # the probes never queued for it
    assert stats.get("requests_errors", 0) == 0  # nor timed out a checkout
    pool_message = next(v for k, v in report.items() if k.startswith("Connection pool"))
    assert status == 200
    assert pool_message == (
        "Warning: pool 100 % in use (2/2), 0 request(s) waiting: "
        "raise DATABASE_POOL_MAX_OVERFLOW or look for slow queries"
    )


def test_health__pool_checkout_timeouts_fail_the_pool_check(client, hold_connections):
    from django.db import OperationalError

    with reconfigured_pool(pool={"min_size": 1, "max_size": 1, "timeout": 0.2}):
        full_report(client)  # first evaluation records the counters
        with hold_connections(1), pytest.raises(OperationalError):
            connection.ensure_connection()
        status, report = full_report(client)
    pool_message = next(v for k, v in report.items() if k.startswith("Connection pool"))
    assert status == 503
    assert pool_message.startswith("Unavailable: 1 checkout(s) waited longer than the pool timeout")


def test_health__long_and_idle_transactions_are_reported(client, settings):
    set_thresholds(settings, long_transaction_seconds=1, idle_in_transaction_seconds=1)
    with direct_connection() as other:
        other.execute("BEGIN")
        other.execute("SELECT 1")
        time.sleep(1.5)
        status, report = full_report(client)
        other.execute("ROLLBACK")
    message = next(v for k, v in report.items() if k.startswith("PostgreSQL server"))
    assert status == 200  # warnings do not make the site unhealthy
    assert "1 transaction(s) open longer than 1 s" in message
    assert "1 session(s) idle in transaction for more than 1 s" in message


def test_health__sessions_blocked_by_a_lock_are_reported(client, settings):
    set_thresholds(settings, lock_wait_seconds=1)
    with direct_connection() as holder, direct_connection() as waiter:
        holder.execute("CREATE TABLE locked_thing (id int)")
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE locked_thing IN ACCESS EXCLUSIVE MODE")
        blocked = threading.Thread(target=lambda: waiter.execute("SELECT count(*) FROM locked_thing"))
        blocked.start()
        time.sleep(1.5)
        _, report = full_report(client)
        holder.execute("ROLLBACK")
        blocked.join(timeout=10)
        holder.execute("DROP TABLE locked_thing")
    message = next(v for k, v in report.items() if k.startswith("PostgreSQL server"))
    assert "1 session(s) blocked by locks for more than 1 s" in message


def test_health__unapplied_migration_fails_readiness(client):
    call_command("migrate", "sessions", "zero", verbosity=0)
    try:
        response = client.get(reverse("dbops:health_ready"))
    finally:
        call_command("migrate", "sessions", verbosity=0)
    assert response.status_code == 503
    assert response.json()["failing"] == ["PendingMigrations"]


DETAIL_URLS = ["dbops:health", "dbops:database_health", "dbops:database_schema", "dbops:migrations_status"]


@pytest.mark.parametrize("name", DETAIL_URLS)
def test_detail_endpoints__need_staff_or_the_token(name, client, django_user_model):
    url = reverse(name)
    assert client.get(url).status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Bearer " + "x" * len(TOKEN)).status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Basic " + TOKEN).status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Bearer " + TOKEN).status_code == 200

    user = django_user_model.objects.create_user("plain", password="pw-plain-1234")
    client.force_login(user)
    assert client.get(url).status_code == 403
    user.is_staff = True
    user.save()
    assert client.get(url).status_code == 200


def test_detail_endpoints__no_token_setting_means_staff_only(client, settings):
    settings.DBOPS = dataclasses.replace(settings.DBOPS, health_token="")
    assert client.get(reverse("dbops:database_health"), HTTP_AUTHORIZATION="Bearer ").status_code == 401


@pytest.mark.system
def test_public_endpoints__reveal_status_only(client, pg_cluster):
    s = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    secrets = [str(s["PORT"]), s["NAME"], s["HOST"], version, "postgres"]
    bodies = [client.get(reverse("dbops:health_live")).content.decode()]
    bodies.append(client.get(reverse("dbops:health_ready")).content.decode())
    pg_cluster.stop(mode="immediate")
    views.ready_cache._value = None
    bodies.append(client.get(reverse("dbops:health_ready")).content.decode())
    for body in bodies:
        for secret in secrets:
            assert secret not in body, (secret, body)


def test_database_health_report__shows_server_and_pool(client):
    report = client.get(reverse("dbops:database_health"), HTTP_AUTHORIZATION="Bearer " + TOKEN).json()
    default = report["databases"]["default"]
    assert report["healthy"] is True
    assert default["reachable"] is True
    assert default["server"]["version"].startswith("15")
    assert default["server"]["max_connections"] > 0
    assert default["pool"]["pool_max"] == connection.settings_dict["OPTIONS"]["pool"]["max_size"]


def test_schema_report__finds_missing_primary_key_unindexed_fk_and_invalid_index(client):
    with direct_connection() as conn:
        conn.execute("CREATE TABLE no_pk (v int)")
        conn.execute("CREATE TABLE parent (id int PRIMARY KEY)")
        conn.execute("CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent(id))")
        conn.execute("INSERT INTO no_pk VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY no_pk_v ON no_pk (v)")  # leaves an INVALID index
        try:
            report = client.get(reverse("dbops:database_schema"), HTTP_AUTHORIZATION="Bearer " + TOKEN).json()
        finally:
            conn.execute("DROP TABLE no_pk, child, parent")
    assert "public.no_pk" in report["tables_without_primary_key"]
    assert {"table": "child", "constraint": "child_parent_id_fkey"} in report["foreign_keys_without_index"]
    assert "no_pk_v" in report["invalid_indexes"]
    assert report["pending_migrations"] == []


def test_migrations_status__lists_applied_and_pending(client):
    call_command("migrate", "sessions", "zero", verbosity=0)
    try:
        report = client.get(reverse("dbops:migrations_status"), HTTP_AUTHORIZATION="Bearer " + TOKEN).json()
    finally:
        call_command("migrate", "sessions", verbosity=0)
    assert report["pending_count"] == 1
    assert report["apps"]["sessions"] == {"applied": [], "pending": ["0001_initial"]}
    assert "0001_initial" in report["apps"]["auth"]["applied"]


def test_health_check_command__runs_the_checks_from_a_shell():
    with pytest.raises(SystemExit) as exit_info:
        call_command("health_check", "dbops:health", "--no-http")
    assert exit_info.value.code == 0

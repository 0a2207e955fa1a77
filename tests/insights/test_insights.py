"""Database insights on a real cluster with each problem planted, and nothing on a clean database (issue #31).

Planted in the test database: a failed CREATE UNIQUE INDEX CONCURRENTLY (INVALID), two identical indexes, auth_group's
id sequence (an AutoField: integer) at 2,000,000,000, a foreign key without an index on a populated table, an
inactive physical replication slot, dead rows, and thresholds lowered so the transaction ID age and the cache hit
ratio cross them. Each code is found on the right object and, where one maps, the right Django model and field.
"""

from __future__ import annotations

import dataclasses
import json
import secrets

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from psycopg import sql

from dbops.conf.config import InsightsConfig
from dbops.insights.checks import CHECKS
from dbops.insights.service import run_insights
from dbops.monitoring import queries as monitoring
from tests.conftest import test_database_connection
from tests.insights.conftest import LOWERED, SLOT
from tests.parts.waiting import wait_for

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def by_object(report, code: str) -> dict[str, object]:
    return {i.object: i for i in report.insights if i.code == code}


def test_each_planted_problem_is_found_on_its_object_and_model(planted):
    wait_for(lambda: by_object(run_insights(limits=LOWERED, codes={"I007"}), "I007"), timeout=15)  # stats flush
    report = run_insights(limits=LOWERED)
    assert report.failed == {}

    database = f"database {connection.settings_dict['NAME']}"  # test_dbops, or test_dbops_gw0 under xdist
    assert database in by_object(report, "I001")
    sequence = by_object(report, "I002")["sequence public.auth_group_id_seq"]
    assert (sequence.level, sequence.model) == ("critical", "auth.Group.id")
    assert "93.1% used" in sequence.message and "BigAutoField" in sequence.fix
    invalid = by_object(report, "I003")
    assert list(invalid) == ["index public.insights_invalid_v"]
    assert "DROP INDEX CONCURRENTLY public.insights_invalid_v" in invalid["index public.insights_invalid_v"].fix
    duplicates = by_object(report, "I004")
    assert "index public.insights_note_b" in duplicates and "index public.insights_note_a" not in duplicates
    assert duplicates["index public.insights_note_b"].detail["duplicate_of"] == "public.insights_note_a"
    assert "index public.insights_note_a" in by_object(report, "I005")  # never scanned, statistics "old enough"
    assert "index public.insights_child_pkey" not in by_object(report, "I005")  # a constraint's index stays
    foreign_key = by_object(report, "I006")["constraint insights_child_parent_id_fkey"]
    assert "CREATE INDEX CONCURRENTLY" in foreign_key.fix and "(parent_id)" in foreign_key.fix
    assert "constraint insights_child_parent_id_fkey" not in by_object(run_insights(), "I006")  # 5,000 < default
    assert "table public.insights_dead" in by_object(report, "I007")
    slot = by_object(report, "I008")[f"slot {SLOT}"]
    assert slot.level == "warn" and "inactive" in slot.message
    statements = by_object(report, "I009")["extension pg_stat_statements"]
    assert statements.level == "info" and statements.fix == "CREATE EXTENSION pg_stat_statements"  # preloaded here
    assert list(by_object(report, "I010")) == [database]


def test_a_clean_database_has_nothing_above_info():
    name = f"insights_clean_{secrets.token_hex(3)}"
    with test_database_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with test_database_connection(dbname=name) as conn:
            found = [raw for check in CHECKS.values() for raw in check(conn, InsightsConfig())]
    finally:
        with test_database_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    assert [(raw.code, raw.level) for raw in found] == [("I009", "info")]


def test_command_prints_json_and_exits_1_on_a_finding(planted, capsys, settings):
    settings.DBOPS = dataclasses.replace(settings.DBOPS, insights=LOWERED)
    with pytest.raises(CommandError) as failed:
        call_command("db_insights", "--json", "--code", "I003", "--code", "I008")
    assert failed.value.returncode == 1
    report = json.loads(capsys.readouterr().out)
    assert {i["code"] for i in report["insights"]} == {"I003", "I008"}
    call_command("db_insights", "--code", "I009", "--fail-on", "critical")  # info only: exit 0
    assert "I009 info" in capsys.readouterr().out


@pytest.fixture
def statement_statistics():
    with test_database_connection() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
    yield
    with test_database_connection() as conn:
        conn.execute("DROP EXTENSION pg_stat_statements")


def test_top_statements_name_the_view_that_ran_them(statement_statistics):
    monitoring.slow_queries.clear()
    token = monitoring.current_origin.set("view:shop-report")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [0.25])  # slow: the query monitor keeps it with its view
    finally:
        monitoring.current_origin.reset(token)
    report = run_insights(codes={"I009"})
    sleep = next(i for i in report.insights if "pg_sleep" in i.detail.get("query", ""))
    assert sleep.detail["query"] == "SELECT pg_sleep($1)"  # pg_stat_statements' own normalization
    assert sleep.detail["origins"] == ["view:shop-report"] and "(ran by view:shop-report)" in sleep.message
    unseen = [i for i in report.insights if i is not sleep]
    assert all("origins" not in i.detail for i in unseen)  # statements the monitor never saw name nobody
    again = run_insights(codes={"I004", "I009"})  # I004's catalog query runs first: it must not list itself
    listed = [i.detail.get("query", "") for i in again.insights if i.code == "I009"]
    assert listed and not [query for query in listed if "pg_index" in query], listed

"""The load test against the test cluster through the real pool: counts add up, the pool agrees with the server."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dbops.loadtest import LoadPlan, LoadTestError, run_load
from tests.conftest import test_database_connection

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def scratch_schemas() -> list[str]:
    with test_database_connection() as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'dbops_loadtest_%'").fetchall()
    return [name for (name,) in rows]


def test_loadtest__counts_add_up_and_the_pool_agrees_with_the_server():
    report = run_load(LoadPlan(users=40, duration=3, think_ms=20, ramp_up=0.2, max_requests=600))
    assert report["requests"] == report["started"] == report["successes"] + report["errors"] == 600
    assert report["errors"] == 0 and report["passed"]
    assert len(report["latency_ms"]) == 3 and report["latency_ms"]["checkout"]["p95"] is not None
    pool = report["pool"]
    # 40 users share the 6-connection test pool: the server never sees more than the pool's maximum ...
    assert 0 < pool["peak_server_connections"] <= pool["max_size"] == 6
    assert pool["peak_size"] <= pool["max_size"]
    # ... and, once quiet, exactly the connections the pool says it holds.
    assert pool["settled"]["pool_size"] == pool["settled"]["server_connections"]
    assert pool["after"]["requests_num"] - pool["before"]["requests_num"] >= 600
    assert scratch_schemas() == []  # the scratch schema is dropped


def test_loadtest__a_pg_sleep_workload_breaches_the_budget_and_exits_1(capsys):
    with pytest.raises(CommandError) as breach:
        call_command(
            "loadtest",
            "--users", "4", "--duration", "2", "--think-ms", "0", "--ramp-up", "0",
            "--workload", "sleep", "--sleep-ms", "150", "--max-requests", "12", "--json",
        )  # fmt: skip
    assert breach.value.returncode == 1
    report = json.loads(capsys.readouterr().out)
    assert report["latency_ms"]["query"]["p50"] >= 150  # the database really slept
    assert report["latency_ms"]["total"]["p95"] > report["budget_ms"] and report["errors"] == 0
    assert not report["passed"]


def test_loadtest__errors_are_counted_by_kind_and_fail_the_run(hold_connections):
    # Every pooled connection held elsewhere: each request waits the 2 s pool timeout and fails.
    with hold_connections(6):
        report = run_load(LoadPlan(users=3, duration=1, think_ms=0, ramp_up=0, max_requests=3))
    assert report["requests"] == report["successes"] + report["errors"] == 3
    assert report["errors"] == 3 and list(report["errors_by_kind"]) == ["OperationalError(PoolTimeout)"]
    assert not report["passed"]


def test_loadtest__http_mode_refuses_a_remote_url_unless_allowed():
    with pytest.raises(LoadTestError, match="not a loopback address"):
        run_load(LoadPlan(users=1, duration=1, url="http://203.0.113.9/health/live"))
    with pytest.raises(CommandError) as bad:
        call_command("loadtest", "--workload", "sleep", "--users", "0")
    assert bad.value.returncode == 2


@pytest.mark.system
def test_loadtest__http_mode_against_a_live_server(live_server):
    report = run_load(LoadPlan(users=5, duration=2, think_ms=10, ramp_up=0, url=f"{live_server.url}/health/live"))
    assert report["mode"] == "http" and report["pool"] is None
    assert report["requests"] == report["successes"] > 0 and report["errors"] == 0

"""The production self-test: passes on a healthy set-up; each real failure turns its own line red and exits 1."""

from __future__ import annotations

import dataclasses
import datetime
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from dbops.selftest import SelftestOptions, run_selftest
from tests.factories import BackupRecordFactory

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]
# Each test is about one line's verdict, not this machine's speed: the timing budgets are out of reach here
# (a busy 2-core box took over 50 ms to connect); the budgets' own comparison is plain arithmetic.
QUICK = SelftestOptions(connect_samples=5, query_samples=50, load_users=10, load_seconds=1, connect_budget_ms=60_000)


@pytest.fixture(autouse=True)
def generous_latency_budget(settings):
    settings.DBOPS = dataclasses.replace(settings.DBOPS, performance_threshold_ms=60_000)


def statuses(result: dict) -> dict[str, str]:
    return {line["name"]: line["status"] for line in result["lines"]}


def line_of(result: dict, name: str) -> dict:
    return next(line for line in result["lines"] if line["name"] == name)


def failing(result: dict) -> set[str]:
    return {name for name, status in statuses(result).items() if status == "fail"}


def test_selftest__passes_on_a_healthy_setup(capsys):
    BackupRecordFactory()
    call_command(
        "selftest",
        "--connect-samples",
        "5",
        "--query-samples",
        "50",
        "--load-users",
        "10",
        "--load-seconds",
        "1",
        "--connect-budget-ms",
        "60000",
    )
    out = capsys.readouterr().out
    assert "self-test passed" in out and "FAIL" not in out
    for name in ("enforcement", "connectivity", "connection establishment", "query latency", "pool sizing",
                 "load", "backups", "migrations", "breaker"):  # fmt: skip
        assert f"PASS  {name}" in out


@pytest.mark.system
def test_selftest__stopped_cluster_fails_fast_and_exits_1(pg_cluster, capsys):
    BackupRecordFactory()
    time.sleep(1)  # let the test cluster's writes settle before the crash stop
    pg_cluster.stop(mode="immediate")
    started = time.monotonic()
    with pytest.raises(CommandError) as failure:
        call_command("selftest", "--load-users", "10", "--load-seconds", "1")
    elapsed = time.monotonic() - started
    assert failure.value.returncode == 1
    out = capsys.readouterr().out
    assert "FAIL  connectivity" in out and "not run: the database is unreachable" in out
    assert "PASS  enforcement" in out
    assert elapsed < 15  # the database checks are not each left to time out


def test_selftest__unapplied_migration_fails_its_line(lab):
    BackupRecordFactory()
    lab("guarded")
    result = run_selftest(QUICK)
    assert failing(result) == {"migrations"} and not result["passed"]
    assert "migration_lab.0001_initial" in line_of(result, "migrations")["detail"]


def test_selftest__stale_backup_fails_its_line(settings):
    interval = settings.DBOPS.backup_interval_hours
    BackupRecordFactory(started_at=timezone.now() - datetime.timedelta(hours=3 * interval))
    result = run_selftest(QUICK)
    assert failing(result) == {"backups"}


def test_selftest__pool_larger_than_the_server_allows_fails_its_line(settings):
    BackupRecordFactory()
    settings.DBOPS = dataclasses.replace(settings.DBOPS, web_workers=1000)
    result = run_selftest(QUICK)
    assert failing(result) == {"pool sizing"}
    line = line_of(result, "pool sizing")
    # 6 pooled connections and a probe per worker, 2 for each of the 2 command processes
    assert line["measured"]["needed"] == 6 * 1000 + 1000 + 2 * 2 > line["measured"]["server_allows"]

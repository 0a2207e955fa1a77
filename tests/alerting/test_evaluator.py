"""The alert evaluator tells the truth: a shared or a named per-process cache, pools without itself, alerts in time."""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.request

import pytest
from django.utils import timezone

from dbops.alerting import lifecycle as alerts
from dbops.checks import W006_ID, check_shared_cache
from dbops.models import Alert, MigrationRun, OperationsSample
from tests import PROJECT_DIR
from tests.alerting.test_alerts import WebhookReceiver
from tests.parts.site import gunicorn, manage, production_environ, url_of_test_database
from tests.parts.waiting import wait_for
from tests.tiers import require_tool

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def redis_cache(url: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}


def drive(base: str, requests: int = 30) -> None:
    for _ in range(requests):
        with urllib.request.urlopen(base + "/bench/select-one", timeout=30) as response:  # noqa: S310 - loopback
            assert response.status == 200


def served_environ(tmp_path, **extra: str) -> dict[str, str]:
    return production_environ(
        tmp_path / "static",
        DJANGO_ROOT_URLCONF="bench.urls",
        DBOPS_HEALTH_TOKEN="evaluator-token-0123456789-abcdefghijk",
        **extra,
    )


def evaluate_from_the_shell(**environ: str) -> dict:
    result = manage("alerts", "evaluate", "--json", "--no-notify", DATABASE_URL=url_of_test_database(), **environ)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def published_queries(redis_url: str) -> int:
    """Return the queries the web processes' snapshots in the shared cache hold (what an evaluator would read)."""
    from django.core.cache.backends.redis import RedisCache

    from dbops.monitoring.snapshots import SNAPSHOT_KEY

    shared = RedisCache(redis_url, {}).get(SNAPSHOT_KEY) or {}
    return sum(s["databases"]["default"]["queries"]["count"] for s in shared.values())


# -- 1: a per-process cache is named, a shared one is used --------------------------------------------------------
def test_w006__a_per_process_cache_in_production_is_a_warning_and_redis_is_not(settings, redis_server):
    settings.DBOPS = dataclasses.replace(settings.DBOPS, environment="production")
    settings.CACHES = LOCMEM
    assert [w.id for w in check_shared_cache()] == [W006_ID]
    settings.CACHES = redis_cache(redis_server)
    assert check_shared_cache() == []
    settings.DBOPS = dataclasses.replace(settings.DBOPS, environment="development")
    settings.CACHES = LOCMEM
    assert check_shared_cache() == []  # development may run on one process


def test_shared_cache__the_evaluator_sees_the_workers_queries_and_not_itself(tmp_path, redis_server):
    with gunicorn(served_environ(tmp_path, CACHE_URL=redis_server)) as base:
        # A worker publishes at most every 10 s, its first snapshot maybe from the readiness probe: drive until
        # one with queries is out (a condition, not a time budget).
        wait_for(lambda: drive(base, requests=5) or published_queries(redis_server), timeout=120, step=0.5)
        evaluate_from_the_shell(CACHE_URL=redis_server)
    sample = OperationsSample.objects.get(alias="default")
    assert 1 <= sample.processes <= 2  # gunicorn's workers; the evaluator is not a web process
    assert sample.queries >= 1 and sample.p95_ms is not None


def test_per_process_cache__the_evaluator_counts_no_process_and_the_dashboard_says_why(admin_client, tmp_path):
    with gunicorn(served_environ(tmp_path, CACHE_URL="locmem://")) as base:
        drive(base)
        evaluate_from_the_shell(CACHE_URL="locmem://")
    sample = OperationsSample.objects.get(alias="default")
    assert (sample.processes, sample.p95_ms) == (0, None)  # it sees no worker: it does not pretend to be one

    html = admin_client.get("/admin/dbops/dashboard/").content.decode()
    assert "The cache is per-process" in html and "CACHE_URL=redis://" in html
    assert re.search(r"Alert evaluator: last ran .*ago", html)
    assert "1 evaluation, 0 with queries" in html
    assert "none with queries" in html  # the chart says why it is empty, not "no samples yet"


@pytest.mark.database
def test_dashboard__names_the_processes_it_sees_and_an_evaluator_that_never_ran(admin_client):
    html = admin_client.get("/admin/dbops/dashboard/").content.decode()
    assert "Web processes seen: <code>" in html  # this test process serves the page
    assert "has never run" in html and "alerts evaluate --loop" in html


def test_make_run_helper__finds_or_starts_a_redis_that_answers():
    import subprocess
    import sys

    url = subprocess.run(
        [sys.executable, "ops/dev/shared_cache.py"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout.strip()
    require_tool("a Redis server", how="make test installs redis-server", found=bool(url))
    import redis

    assert redis.Redis.from_url(url).ping()


# -- 2: pool_utilization counts what requests hold ------------------------------------------------------------------
def test_pool_utilization__an_idle_site_evaluated_from_the_shell_does_not_fire():
    result = evaluate_from_the_shell(DATABASE_POOL_SIZE="10", DATABASE_POOL_MAX_OVERFLOW="0")
    assert not [f for f in result["firing"] if f.startswith("pool_")], result
    assert not Alert.objects.filter(rule__startswith="pool_").exists()


# -- 3: a command delivers its alert before it exits ----------------------------------------------------------------
def test_failed_backup_from_the_shell__its_alert_is_sent_and_recorded_before_the_command_exits(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("a file where the backups should go")
    receiver = WebhookReceiver()
    try:
        result = manage(
            "backup",
            DATABASE_URL=url_of_test_database(),
            DATABASE_BACKUP_DIR=str(not_a_folder / "backups"),
            DBOPS_ALERT_WEBHOOK_URL=receiver.url,
            DBOPS_ALERT_WEBHOOK_RETRIES="0",
            DBOPS_ALERT_EVENTS="true",  # the suite turns events off for its own process
        )
        assert result.returncode == 2, result.stderr
        # Sent before the command exited, not at the next evaluation (no backup ever succeeded: stale too).
        assert {post["rule"] for post in receiver.posts} == {"backup_failed", "backup_stale"}, result.stderr
    finally:
        receiver.close()
    assert Alert.objects.filter(rule="backup_failed", state=Alert.State.FIRING).exists()


@pytest.mark.database
def test_failed_rollback__advice_does_not_say_re_run_migration_apply():
    MigrationRun.objects.create(
        kind=MigrationRun.Kind.ROLLBACK,
        status=MigrationRun.Status.FAILED,
        started_at=timezone.now(),
        target="shop.0002",
        error="column x contains null values",
    )
    alerts.evaluate(send=False)
    alert = Alert.objects.get(rule="migration_run_failed")
    assert "migration_apply" not in alert.message
    assert "migration_rollback" in alert.message and "shop.0002" in alert.message

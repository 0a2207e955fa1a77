"""Alert rules on real conditions, the lifecycle (dedup, cooldown, resolve), channels (webhook, e-mail, log)."""

from __future__ import annotations

import dataclasses
import datetime
import http.server
import json
import threading
import time

import django
import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, connections
from django.utils import timezone

from dbops.alerting import lifecycle as alerts
from dbops.alerting.rules import Signal
from dbops.breaker.state import get_breaker
from dbops.localdb import free_port
from dbops.migrations_safety.runner import apply_migrations
from dbops.models import Alert, BackupRecord, OperationsSample
from dbops.monitoring import queries as monitoring
from dbops.monitoring import snapshots
from tests.factories import BackupRecordFactory

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


class WebhookReceiver:
    """A loopback HTTP server that records every POSTed JSON body and answers `status`."""

    def __init__(self, status: int = 200, location: str = "") -> None:
        self.posts: list[dict] = []
        self.authorizations: list[str | None] = []
        self.status = status
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append(json.loads(body))
                receiver.authorizations.append(self.headers.get("Authorization"))
                self.send_response(receiver.status)
                if location:
                    self.send_header("Location", location)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def alert_settings(settings):
    """Configure alerting for a test: returns a function that replaces fields of DBOPS.alerts (and DBOPS)."""

    def configure(dbops=None, **alert_fields):
        base = settings.DBOPS
        settings.DBOPS = dataclasses.replace(
            base, alerts=dataclasses.replace(base.alerts, **alert_fields), **(dbops or {})
        )

    configure(events=True, min_queries=3)
    monitoring.query_windows["default"].clear()
    monitoring.slow_queries.clear()
    snapshots._timeout_history.clear()
    return configure


@pytest.fixture
def webhook(alert_settings):
    receiver = WebhookReceiver()
    alert_settings(webhook_url=receiver.url, webhook_retries=0)
    yield receiver
    receiver.close()


def firing() -> set[str]:
    return {f"{a.rule}[{a.subject}]" for a in Alert.objects.filter(state=Alert.State.FIRING)}


def wait_until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def run_queries(sql: str, times: int) -> None:
    with connection.cursor() as cursor:
        for _ in range(times):
            cursor.execute(sql)


def test_query_latency__slow_queries_fire_then_fast_ones_resolve(alert_settings, webhook):
    run_queries("SELECT pg_sleep(0.12)", 3)  # p95 120 ms > the 100 ms budget
    alerts.evaluate()
    assert "query_latency_p95[default]" in firing()
    alert = Alert.objects.get(rule="query_latency_p95", state="firing")
    assert alert.value >= 120 and alert.threshold == 100 and "budget" in alert.message
    monitoring.query_windows["default"].clear()
    run_queries("SELECT 1", 5)
    alerts.evaluate()
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at is not None
    assert [(p["rule"], p["state"]) for p in webhook.posts if p["rule"] == "query_latency_p95"] == [
        ("query_latency_p95", "firing"),
        ("query_latency_p95", "resolved"),
    ]


def test_slow_query_rate__fires_over_the_limit(alert_settings):
    alert_settings(slow_queries_per_minute=1, dbops={"slow_query_threshold_ms": 50})
    run_queries("SELECT pg_sleep(0.06)", 6)  # 6 slow in a 5-minute window: 1.2/min > 1
    alerts.evaluate(send=False)
    assert "slow_query_rate[default]" in firing()


def test_pool_rules__utilization_and_exhaustion_on_the_real_pool(alert_settings, hold_connections):
    snapshots.process_snapshot()  # the pool observed before: the baseline for "recent" timeouts
    with hold_connections(5):  # 5 of the test pool's 6 connections: 83 % >= 80 %
        alerts.evaluate(send=False)
        assert "pool_utilization[default]" in firing()
        assert "pool_exhausted[default]" not in firing()
    with hold_connections(6):
        failures = []

        def checkout():
            try:
                connections["default"].ensure_connection()
            except Exception as exc:  # waits the 2 s pool timeout
                failures.append(exc)
            finally:
                connections["default"].close()

        thread = threading.Thread(target=checkout)
        thread.start()
        thread.join()
        assert failures
        alerts.evaluate(send=False)
        assert "pool_exhausted[default]" in firing()
    connection.close()
    alerts.evaluate(send=False)
    assert "pool_utilization[default]" not in firing()


@pytest.mark.system
def test_breaker__real_outage_alert_is_sent_even_though_the_database_is_down(
    alert_settings, webhook, pg_cluster, monkeypatch
):
    breaker = get_breaker()
    # The breaker stays open however long the restart takes: this test is about recording, not recovery.
    monkeypatch.setattr(breaker, "_probe", lambda: False)
    time.sleep(1)
    pg_cluster.stop(mode="immediate")
    connection.close()
    try:
        with pytest.raises(OperationalError) as outage:
            run_queries("SELECT 1", 1)
        for _ in range(settings_threshold()):
            breaker.record_failure(breaker.before_request(), outage.value)
        sent = wait_until(lambda: [p for p in webhook.posts if p["rule"] == "breaker_open"], timeout=15)
        assert sent[0]["state"] == "firing" and "not recorded: the database is unavailable" in sent[0]["message"]
    finally:
        pg_cluster.start()
    connection.close()
    connection.close_pool()
    alerts.evaluate()  # the database is back: the evaluator records what the event could not
    assert "breaker_open[default]" in firing()
    breaker.reset()
    wait_until(lambda: "breaker_open[default]" not in firing())


def settings_threshold() -> int:
    from django.conf import settings

    return settings.DBOPS.breaker.failure_threshold


def test_backup_rules__failed_stale_and_unverifiable(alert_settings, settings):
    interval = settings.DBOPS.backup_interval_hours
    old = timezone.now() - datetime.timedelta(hours=3 * interval)
    BackupRecordFactory(started_at=old)
    alerts.evaluate(send=False)
    assert "backup_stale[default]" in firing()
    BackupRecordFactory(status=BackupRecord.Status.FAILED, error="pg_dump: error: connection lost")
    alerts.evaluate(send=False)
    assert {"backup_failed[default]", "backup_stale[default]"} <= firing()
    BackupRecordFactory(verification=BackupRecord.Verification.FAILED)
    alerts.evaluate(send=False)
    assert "backup_verification_failed[default]" in firing()
    assert not {"backup_failed[default]", "backup_stale[default]"} & firing()  # a fresh success clears both
    BackupRecordFactory()
    alerts.evaluate(send=False)
    assert not {a for a in firing() if a.startswith("backup")}


def test_migration_failure__raises_its_alert_at_once(alert_settings, lab):
    lab("midfail")
    with pytest.raises(Exception, match="0003_broken failed"):
        apply_migrations(app_label="migration_lab")
    alert = wait_until(lambda: Alert.objects.filter(rule="migration_run_failed", state="firing").first())
    assert "division by zero" in alert.message


def test_health_check_rule__pending_migration_fails_readiness(alert_settings, lab):
    lab("guarded")
    alerts.evaluate(send=False)
    assert "health_check_failing[PendingMigrations(default)]" in firing()


def test_server_connections__fires_near_max_connections(alert_settings, settings):
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS, health=dataclasses.replace(settings.DBOPS.health, connections_warn_percent=1)
    )
    alerts.evaluate(send=False)
    alert = Alert.objects.get(rule="server_connections_high", state="firing")
    assert alert.value >= 1 and alert.threshold == 1


def test_lifecycle__dedup_cooldown_and_flapping(alert_settings, webhook):
    alert_settings(cooldown_seconds=600)
    on = Signal("pool_utilization", "default", True, "warning", "pool busy", 90, 80)
    off = dataclasses.replace(on, firing=False)
    first = alerts.process_signal(on)
    again = alerts.process_signal(on)
    assert first.pk == again.pk and Alert.objects.filter(rule="pool_utilization").count() == 1
    alerts.process_signal(off)
    alerts.process_signal(on)  # flaps back within the cooldown: same alert, no new notification
    reopened = Alert.objects.get(rule="pool_utilization")
    assert reopened.state == "firing" and reopened.flaps == 1
    alerts.process_signal(off)
    assert [p["state"] for p in webhook.posts] == ["firing", "resolved"]
    # After the cooldown a new episode starts and is sent again.
    Alert.objects.update(resolved_at=timezone.now() - datetime.timedelta(seconds=601))
    alerts.process_signal(on)
    assert Alert.objects.filter(rule="pool_utilization").count() == 2
    assert [p["state"] for p in webhook.posts] == ["firing", "resolved", "firing"]


def test_acknowledged_alert_is_not_resent(alert_settings, webhook):
    alert_settings(cooldown_seconds=600)
    on = Signal("breaker_open", "default", True, "critical", "open")
    alert = alerts.process_signal(on)
    assert alerts.acknowledge([alert], by="oncall") == 1
    alerts.process_signal(dataclasses.replace(on, firing=False))
    alerts.process_signal(on)  # flaps back: the same, still acknowledged alert
    Alert.objects.update(notified_at=timezone.now() - datetime.timedelta(seconds=601))
    alerts.process_signal(on)  # the cooldown has passed, but it is acknowledged: silent
    assert [p["state"] for p in webhook.posts] == ["firing", "resolved"]
    Alert.objects.update(acknowledged_at=None)
    alerts.process_signal(on)  # the same moment without the acknowledgement: sent again
    assert [p["state"] for p in webhook.posts] == ["firing", "resolved", "firing"]


def test_channels__slack_body_and_email_to_admins(alert_settings, webhook, settings):
    alert_settings(webhook_format="slack")
    settings.ADMINS = ["oncall@example.com"] if django.VERSION >= (6, 0) else [("oncall", "oncall@example.com")]
    alerts.process_signal(Signal("backup_failed", "default", True, "critical", "the last backup failed"))
    assert webhook.posts == [{"text": "[CRITICAL] backup_failed firing (default): the last backup failed"}]
    assert len(mail.outbox) == 1 and "backup_failed firing" in mail.outbox[0].subject


def test_channels__a_dead_webhook_never_breaks_evaluation(alert_settings, caplog):
    alert_settings(webhook_url=f"http://127.0.0.1:{free_port()}/nothing-listens", webhook_retries=1)
    run_queries("SELECT pg_sleep(0.12)", 3)
    result = alerts.evaluate()
    assert "query_latency_p95[default] warning" in result["firing"]
    alert = Alert.objects.get(rule="query_latency_p95")
    assert alert.notifications == 1  # attempted once, failures logged
    assert any(getattr(r, "event", "") == "alert_channel_failed" and r.channel == "webhook" for r in caplog.records)


def test_webhook__retries_a_5xx_then_gives_up(alert_settings):
    receiver = WebhookReceiver(status=503)
    try:
        alert_settings(webhook_url=receiver.url, webhook_retries=2)
        alerts.process_signal(Signal("breaker_open", "default", True, "critical", "open"))
        assert len(receiver.posts) == 3
    finally:
        receiver.close()


def test_evaluate_records_samples_and_the_command_exit_codes(alert_settings, capsys):
    run_queries("SELECT pg_sleep(0.12)", 3)
    call_command("alerts", "evaluate", "--no-notify")
    sample = OperationsSample.objects.get()
    assert sample.queries >= 3 and sample.p95_ms >= 120 and sample.pool_max == 6
    capsys.readouterr()
    with pytest.raises(CommandError) as listed:
        call_command("alerts", "list", "--json")
    assert listed.value.returncode == 1
    (latency,) = [row for row in json.loads(capsys.readouterr().out) if row["rule"] == "query_latency_p95"]
    call_command("alerts", "ack", str(latency["id"]), "--by", "oncall")
    assert Alert.objects.get(pk=latency["id"]).acknowledged_by == "oncall"


def test_metrics__history_gauges_for_the_prometheus_rules(client):
    BackupRecordFactory(status=BackupRecord.Status.FAILED)
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "dbops_backup_last_failed 1.0" in body and "dbops_backup_last_success_timestamp_seconds 0.0" in body
    assert 'dbops_database_up{alias="default"} 1.0' in body and "dbops_server_max_connections" in body
    success = BackupRecordFactory(verification=BackupRecord.Verification.FAILED)
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "dbops_backup_last_failed 0.0" in body and "dbops_backup_last_verification_failed 1.0" in body
    (line,) = [x for x in body.splitlines() if x.startswith("dbops_backup_last_success_timestamp_seconds ")]
    assert float(line.split()[1]) == pytest.approx(success.started_at.timestamp(), abs=0.001)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_webhook__a_redirect_is_not_followed(alert_settings, status):
    elsewhere = WebhookReceiver()
    redirecting = WebhookReceiver(status=status, location=elsewhere.url)
    alert_settings(webhook_url=redirecting.url, webhook_retries=0)
    try:
        alerts.process_signal(Signal("breaker_open", "default", True, "critical", "the circuit breaker is open"))
    finally:
        redirecting.close()
        elsewhere.close()
    assert len(redirecting.posts) == 1 and elsewhere.posts == []


def test_webhook__credentials_in_the_url_go_as_basic_auth_and_never_into_a_log(alert_settings, caplog):
    import base64

    receiver = WebhookReceiver()
    try:
        with_credentials = receiver.url.replace("http://", "http://hook-user:HookPw_s3cret@")
        alert_settings(webhook_url=with_credentials, webhook_retries=0)
        alerts.process_signal(Signal("breaker_open", "default", True, "critical", "open"))
        assert len(receiver.posts) == 1
        expected = "Basic " + base64.b64encode(b"hook-user:HookPw_s3cret").decode()
        assert receiver.authorizations == [expected]
    finally:
        receiver.close()
    # The receiver gone: the failure is logged, its credentials are not.
    alert_settings(webhook_url=f"http://hook-user:HookPw_s3cret@127.0.0.1:{free_port()}/hook", webhook_retries=0)
    alerts.process_signal(Signal("breaker_open", "replica", True, "critical", "open"))
    failures = [r for r in caplog.records if getattr(r, "event", "") == "alert_channel_failed"]
    assert failures and all("HookPw_s3cret" not in r.getMessage() for r in caplog.records)

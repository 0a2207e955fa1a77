"""The insights where operators look: the health check and detail JSON, /metrics, the alert rule, the dashboard.

Each reads the shared report (`dbops.insights.shared`): made once, reused until DBOPS_INSIGHTS_REFRESH_SECONDS
old. The planted database has auth_group's id sequence at 93 % of its integer maximum (I002 critical).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from django.urls import reverse

from dbops.alerting import lifecycle as alerts
from dbops.insights.shared import latest_report
from dbops.models import Alert
from tests.conftest import test_database_connection
from tests.insights.conftest import LOWERED

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]

TOKEN = "insights-token-0123456789abcdef"


@pytest.fixture
def lowered(settings):
    settings.DBOPS = dataclasses.replace(settings.DBOPS, insights=LOWERED, health_token=TOKEN)
    return settings


def refresh_every_read(settings) -> None:
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS, insights=dataclasses.replace(settings.DBOPS.insights, refresh_seconds=0)
    )


def test_the_shared_report_is_reused_until_it_is_stale(lowered, planted):
    first = latest_report()
    assert latest_report()["at"] == first["at"]  # within DBOPS_INSIGHTS_REFRESH_SECONDS: not run again
    refresh_every_read(lowered)
    assert latest_report()["at"] > first["at"]


def test_health_check_and_detail_json_report_a_critical_insight(lowered, planted, client):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    response = client.get(reverse("dbops:database_insights"), **auth)
    assert response.status_code == 503  # a critical finding: the detail endpoint says unhealthy
    report = json.loads(response.content)
    sequence = next(i for i in report["insights"] if i["code"] == "I002")
    assert (sequence["level"], sequence["model"]) == ("critical", "auth.Group.id")
    assert client.get(reverse("dbops:database_insights")).status_code in (401, 403)  # no token, no report

    full = json.loads(client.get(reverse("dbops:health"), HTTP_ACCEPT="application/json", **auth).content)
    assert "I002 critical sequence public.auth_group_id_seq (auth.Group.id)" in full["Database insights (default)"]


def test_a_clean_database_reports_healthy(lowered, client):
    refresh_every_read(lowered)
    lowered.DBOPS = dataclasses.replace(lowered.DBOPS, insights=dataclasses.replace(lowered.DBOPS.insights,
                                                                                    xid_age_warn=10**9))  # fmt: skip
    response = client.get(reverse("dbops:database_insights"), HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert json.loads(response.content)["worst"] != "critical"


def test_metrics_export_each_code_and_level(lowered, planted, client):
    body = client.get(reverse("dbops:metrics")).content.decode()
    assert 'dbops_insight_findings{alias="default",code="I002",level="critical"} 1.0' in body
    assert 'dbops_insight_findings{alias="default",code="I003",level="warn"} 1.0' in body
    assert 'dbops_insight_findings{alias="default",code="I002",level="warn"} 0.0' in body
    assert "dbops_insights_report_timestamp_seconds" in body


def test_alert_rule_fires_on_a_threshold_insight_and_resolves_when_fixed(lowered, planted):
    alerts.evaluate(send=False)
    alert = Alert.objects.get(rule="database_insight", subject="I002(default)", state="firing")
    assert alert.severity == "critical" and "auth.Group.id" in alert.message and "BigAutoField" in alert.message
    assert not Alert.objects.filter(rule="database_insight", subject="I003(default)").exists()  # housekeeping
    with test_database_connection() as conn:
        conn.execute("SELECT setval(pg_get_serial_sequence('auth_group', 'id'), 1, false)")
    refresh_every_read(lowered)
    alerts.evaluate(send=False)
    alert.refresh_from_db()
    assert alert.state == "resolved"


def test_dashboard_lists_findings_above_info(lowered, planted, admin_client):
    page = admin_client.get("/admin/dbops/dashboard/").content.decode()
    section = page[page.index('id="insights"') :]
    assert 'data-code="I002"' in section and "auth.Group.id" in section
    assert 'data-code="I009"' not in section[: section.index('id="backups"')]  # info stays on the insights page

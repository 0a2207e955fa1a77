"""The admin's "Database operations" dashboard: staff only, real numbers, and a real browser rendering it."""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil

import pytest
from django.db import connection
from django.utils import timezone

from dbops.alerting import lifecycle as alerts
from dbops.models import OperationsSample
from dbops.monitoring import queries as monitoring
from tests import PROJECT_DIR
from tests.factories import BackupRecordFactory, UserFactory
from tests.tiers import require_tool

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]
DASHBOARD_URL = "/admin/dbops/dashboard/"
ARTIFACTS = PROJECT_DIR / "test-artifacts"


@pytest.fixture
def operations(settings):
    """Real activity to show: slow queries, a recorded sample, a backup, an open alert."""
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS, alerts=dataclasses.replace(settings.DBOPS.alerts, min_queries=3, events=False)
    )
    monitoring.query_windows["default"].clear()
    monitoring.slow_queries.clear()
    with connection.cursor() as cursor:
        for _ in range(10):  # p95 >= 210 ms as long as the page's own queries stay under 200
            cursor.execute("SELECT pg_sleep(0.21)")
    OperationsSample.objects.create(
        at=timezone.now() - datetime.timedelta(minutes=30), alias="default", queries=50, p50_ms=1.0, p95_ms=4.0,
        p99_ms=9.0, pool_in_use=1, pool_max=6, processes=1,
    )  # fmt: skip
    backup = BackupRecordFactory(
        size_bytes=5 * 1024 * 1024, row_counts={"public.auth_user": 3, "public.shop_order": 1250}
    )
    alerts.evaluate(send=False)  # records a second sample and opens query_latency_p95
    return backup


def test_dashboard__staff_only(client, django_user_model):
    assert client.get(DASHBOARD_URL).status_code == 302  # to the login page
    user = django_user_model.objects.create_user("plain", password="pw-plain-12345")
    client.force_login(user)
    assert client.get(DASHBOARD_URL).status_code == 302  # not staff: the admin sends it to log in


def test_dashboard__shows_pool_breaker_latency_slow_queries_backups_alerts(admin_client, operations):
    page = admin_client.get(DASHBOARD_URL)
    assert page.status_code == 200
    html = page.content.decode()
    data = page.context["data"]
    database = data["databases"][0]
    assert database["p95_ms"] >= 210 and database["pool_max"] == 6
    assert f"{database['pool_in_use']} / 6" in html
    assert "closed" in html and "<svg" in html and "polyline" in html and "budget 100 ms" in html
    assert "SELECT pg_sleep(?)" in html
    assert f"admin/dbops/backuprecord/{operations.pk}/change/" in html and "5.0\xa0MB" in html
    assert "query_latency_p95" in html and "Every migration is applied." in html
    assert database["samples"] == 2
    assert [(v["location"], v["id"]) for v in data["newest_verified"]] == [("on local disk", operations.pk)]
    assert "Newest verified backup:" in html and f"#{operations.pk}</a>, 0.0 h old" in html


def test_alert_admin__filters_and_acknowledge_action(admin_client, operations, django_user_model):
    listing = admin_client.get("/admin/dbops/alert/?severity__exact=warning&state__exact=firing")
    assert listing.status_code == 200 and b"query_latency_p95" in listing.content
    from dbops.models import Alert

    alert = Alert.objects.get(rule="query_latency_p95")
    action = {"action": "acknowledge_selected", "_selected_action": [alert.pk]}

    from django.contrib.admin.models import LogEntry
    from django.contrib.auth.models import Permission
    from django.test import Client

    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-1234", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_alert"))
    view_only = Client()
    view_only.force_login(viewer)
    view_only.post("/admin/dbops/alert/", action, follow=True)
    alert.refresh_from_db()
    assert alert.acknowledged_at is None  # viewing alerts does not let anyone silence them

    admin_client.post("/admin/dbops/alert/", action, follow=True)
    alert.refresh_from_db()
    assert alert.acknowledged_by == "admin" and alert.acknowledged_at is not None
    assert LogEntry.objects.get(object_id=str(alert.pk)).get_change_message() == "Acknowledged"


def chromium_driver():
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    require_tool(
        "chromium and chromedriver",
        how="make test installs Debian's chromium and chromium-driver",
        found=bool(chromium and chromedriver),
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--window-size=1400,2200"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


@pytest.mark.system
def test_browser__logs_in_opens_the_dashboard_and_backup_history(live_server, operations, django_user_model):
    django_user_model.objects.create_superuser("operator", "op@example.com", "pw-operator-12345")
    UserFactory()  # unrelated data, so the pages are not trivially empty
    driver = chromium_driver()
    from selenium.webdriver.common.by import By

    try:
        driver.set_page_load_timeout(30)
        driver.get(f"{live_server.url}/admin/login/?next={DASHBOARD_URL}")
        driver.find_element(By.NAME, "username").send_keys("operator")
        driver.find_element(By.NAME, "password").send_keys("pw-operator-12345")
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        # The click only starts the sign-in: wait for the dashboard page itself (a busy machine takes seconds).
        breaker = WebDriverWait(driver, 30).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#card-breaker .value"))
        )
        assert breaker.text == "closed"
        assert "/ 6" in driver.find_element(By.CSS_SELECTOR, "#pool-default .value").text  # in use / max
        p95 = float(driver.find_element(By.CSS_SELECTOR, "#p95-default .value").text.split()[0])
        assert p95 >= 210
        assert driver.find_element(By.CSS_SELECTOR, "#card-alerts .value").text != "0"
        assert "SELECT pg_sleep(?)" in driver.find_element(By.ID, "slow-queries").text
        assert driver.find_elements(By.CSS_SELECTOR, "#database-default svg polyline")
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))
        assert "Web processes seen" in driver.find_element(By.ID, "sources").text
        driver.get(f"{live_server.url}/admin/dbops/backuprecord/")
        history = driver.find_element(By.ID, "result_list")
        assert str(operations.pk) in history.text and "passed" in history.text
        # At 1400 px every column is visible beside the filter panel, not under it.
        table = history.rect
        assert table["x"] + table["width"] <= driver.find_element(By.ID, "changelist-filter").rect["x"]
        driver.save_screenshot(str(ARTIFACTS / "backup-history.png"))
        driver.get(f"{live_server.url}/admin/dbops/backuprecord/{operations.pk}/change/")
        tools = driver.find_element(By.CSS_SELECTOR, ".object-tools").text
        assert {"VERIFY", "RESTORE…", "DOWNLOAD"} <= set(tools.split())
        assert "total" in driver.find_element(By.CSS_SELECTOR, ".field-row_count_table").text
        driver.save_screenshot(str(ARTIFACTS / "backup-detail.png"))
        # Before a restore the page says what it changes for the people using the site.
        driver.get(f"{live_server.url}/admin/dbops/backuprecord/{operations.pk}/restore/")
        consequences = driver.find_element(By.ID, "restore-consequences").text
        assert "signed out" in consequences and "Accounts go back to the backup's: 3 then, 2 now" in consequences
        assert "Kept as they are now" in consequences
        driver.save_screenshot(str(ARTIFACTS / "restore-confirmation.png"))
        driver.get(f"{live_server.url}/admin/dbops/restorerecord/")
        assert "backup_restore --id" in driver.find_element(By.ID, "empty-hint").text
    finally:
        driver.quit()
    assert os.path.getsize(ARTIFACTS / "dashboard.png") > 10_000

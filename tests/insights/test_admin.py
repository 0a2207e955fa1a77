"""The admin's "Database insights" page against a real statement running on the test database.

Viewing, cancelling and terminating each need their own permission; each action is in the admin log.
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client

from tests.conftest import test_database_connection
from tests.parts.waiting import wait_for

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]
PAGE = "/admin/dbops/databaseinsights/"


def staff(*codenames: str) -> Client:
    user = User.objects.create_user(f"staff-{'-'.join(codenames) or 'none'}", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="dbops", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


class SlowStatement:
    """A statement running on its own connection (application_name names it) until cancelled or 30 s pass."""

    def __init__(self, name: str) -> None:
        self.name, self.error = name, None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with test_database_connection() as conn:
                conn.execute("SELECT set_config('application_name', %s, false)", [self.name])
                conn.execute("SELECT pg_sleep(30)")
        except psycopg.Error as exc:
            self.error = exc

    def pid(self) -> int | None:
        with test_database_connection() as conn:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = 'active'", [self.name]
            ).fetchone()
        return row[0] if row else None


def test_viewing_needs_its_own_permission():
    assert staff().get(PAGE).status_code == 403
    assert staff("cancel_query").get(PAGE).status_code == 403
    page = staff("view_database_insights").get(PAGE)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-code="I009"' in body  # pg_stat_statements is not created in the test database: how to enable it
    assert "Cancel" not in body and "Terminate" not in body  # no action without its permission


def test_cancel_and_terminate_each_need_their_permission_and_are_logged():
    slow = SlowStatement("insights-victim")
    slow.thread.start()
    pid = wait_for(slow.pid, timeout=10)
    viewer = staff("view_database_insights")
    assert f'id="backend-{pid}"' in viewer.get(PAGE).content.decode()
    assert viewer.post(f"{PAGE}{pid}/cancel/").status_code == 403

    canceller = staff("view_database_insights", "cancel_query")
    assert canceller.get(f"{PAGE}{pid}/cancel/").status_code == 405  # an action is a POST
    assert canceller.post(f"{PAGE}{pid}/terminate/").status_code == 403  # cancelling is not terminating
    assert canceller.post(f"{PAGE}{pid}/cancel/").status_code == 302
    slow.thread.join(timeout=10)
    assert isinstance(slow.error, psycopg.errors.QueryCanceled)
    (entry,) = LogEntry.objects.filter(object_id=str(pid))
    assert entry.user.username == "staff-view_database_insights-cancel_query"
    assert "cancelled the statement of" in entry.change_message and "pg_sleep(30)" in entry.change_message

    again = SlowStatement("insights-victim-2")
    again.thread.start()
    second = wait_for(again.pid, timeout=10)
    terminator = staff("view_database_insights", "terminate_query")
    assert terminator.post(f"{PAGE}{second}/terminate/").status_code == 302
    again.thread.join(timeout=10)
    assert isinstance(again.error, psycopg.OperationalError)  # the session ended
    assert LogEntry.objects.filter(object_id=str(second), change_message__startswith="terminated").exists()

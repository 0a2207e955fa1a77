"""The fix of each index insight written as a migration: graded safe by dbops' own rules, applied, finding gone.

Planted on a Django model's table (django_admin_log, with 3,000 rows): its foreign key index dropped (I006 on
admin.LogEntry.user), two identical indexes Django does not know (I004) and a failed CREATE UNIQUE INDEX
CONCURRENTLY (I003, its duplicates removed before the fix runs).
"""

from __future__ import annotations

import dataclasses

import pytest
from django.contrib.auth.models import User

from dbops.conf.config import InsightsConfig
from dbops.insights.fixes import write_fix_migrations
from dbops.insights.service import run_insights
from dbops.migrations_safety.analysis import analyze
from dbops.migrations_safety.catalog import Severity
from tests.conftest import test_database_connection
from tests.insights.conftest import executor_with, load_admin_migration

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]

LIMITS = dataclasses.replace(InsightsConfig(), foreign_key_min_rows=1_000)
CODES = {"I003", "I004", "I006"}


@pytest.fixture
def planted_on_a_model():
    user = User.objects.create(username="insights")
    with test_database_connection() as conn:
        (user_index, definition) = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'django_admin_log' "
            "AND indexdef LIKE '%%(user_id)%%'"
        ).fetchone()
        conn.execute(f'DROP INDEX "{user_index}"')
        conn.execute(
            "INSERT INTO django_admin_log (action_time, object_repr, action_flag, change_message, user_id) "
            "SELECT now(), 'object ' || mod(g, 2000), 1, '', %s FROM generate_series(1, 3000) g",
            [user.pk],
        )
        conn.execute("CREATE INDEX insights_log_time_1 ON django_admin_log (action_time)")
        conn.execute("CREATE INDEX insights_log_time_2 ON django_admin_log (action_time)")
        with pytest.raises(Exception, match="could not create unique index"):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY insights_log_repr ON django_admin_log (object_repr)")
        conn.execute("ANALYZE django_admin_log")
    yield
    with test_database_connection() as conn:
        for name in ("insights_log_time_1", "insights_log_time_2", "insights_log_repr", "django_admin_log_user_id_idx"):
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        conn.execute(definition)
        conn.execute("DELETE FROM django_migrations WHERE app = 'admin' AND name LIKE '%%dbops_i00%%'")


def test_written_fixes_are_safe_apply_and_clear_their_findings(planted_on_a_model, tmp_path):
    report = run_insights(limits=LIMITS, codes=CODES)
    found = {(i.code, i.object): i.model for i in report.insights if i.model and i.model.startswith("admin.")}
    assert found == {
        ("I003", "index public.insights_log_repr"): "admin.LogEntry.object_repr",
        ("I004", "index public.insights_log_time_2"): "admin.LogEntry.action_time",
        ("I006", "constraint django_admin_log_user_id_c564eba6_fk_auth_user_id"): "admin.LogEntry.user",
    }
    ours = [i for i in report.insights if i.model and i.model.startswith("admin.")]  # auth's own are real too
    written = write_fix_migrations(ours, tmp_path)
    assert [(f.code, f.app_label) for f in written] == [("I003", "admin"), ("I004", "admin"), ("I006", "admin")]
    assert "Django already expects this index" in written[2].note
    migrations = [load_admin_migration(f.path) for f in written]
    assert [m.dependencies[0][1] for m in migrations[1:]] == [m.name for m in migrations[:-1]]  # one chain

    executor = executor_with(migrations)
    graded = analyze(nodes=[("admin", m.name) for m in migrations], loader=executor.loader)
    assert [f for f in graded.findings if f.severity >= Severity.WARN] == []  # safe by dbops' own rules

    with test_database_connection() as conn:  # what the I003 fix says: remove the cause first
        conn.execute(
            "DELETE FROM django_admin_log a USING django_admin_log b "
            "WHERE a.object_repr = b.object_repr AND a.id > b.id"
        )
    state = executor.loader.project_state()
    for migration in migrations:
        state = executor.apply_migration(state, migration)
    after = run_insights(limits=LIMITS, codes=CODES)
    assert not [i for i in after.insights if i.model and i.model.startswith("admin.")]

"""I011: an index advised for a top statement only when hypopg shows the planner would use it (Dexter's method).

Real pg_stat_statements and hypopg in the test cluster; django_admin_log with 20,000 rows. A statement filtering on
an unindexed column gets the advice, the migration written for it is graded safe and applied, and the advice is
gone; a statement on the primary key and one that reads most of the table get none.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection

from dbops.insights.fixes import write_fix_migrations
from dbops.insights.service import run_insights
from dbops.migrations_safety.analysis import analyze
from dbops.migrations_safety.catalog import Severity
from tests.conftest import test_database_connection
from tests.insights.conftest import executor_with, load_admin_migration
from tests.tiers import require_tool

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]

BY_REPR = 'SELECT "id" FROM "django_admin_log" WHERE "object_repr" = %s'
BY_ID = 'SELECT "object_repr" FROM "django_admin_log" WHERE "id" = %s'
MOST_ROWS = 'SELECT count(*) FROM "django_admin_log" WHERE "action_flag" >= %s'


@pytest.fixture
def statements_on_admin_log():
    with test_database_connection() as conn:
        hypopg = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'").fetchone()
    require_tool("hypopg", how="make test installs Debian's postgresql-15-hypopg", found=hypopg is not None)
    user = User.objects.create(username="advice")
    with test_database_connection() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        conn.execute(
            "INSERT INTO django_admin_log (action_time, object_repr, action_flag, change_message, user_id) "
            "SELECT now(), 'object ' || g, 1 + g %% 3, '', %s FROM generate_series(1, 20000) g",
            [user.pk],
        )
        conn.execute("ANALYZE django_admin_log")
        conn.execute("SELECT pg_stat_statements_reset()")
    with connection.cursor() as cursor:
        for n in range(20):
            cursor.execute(BY_REPR, [f"object {n}"])
            cursor.execute(BY_ID, [n])
            cursor.execute(MOST_ROWS, [1])
    yield
    with test_database_connection() as conn:
        conn.execute("DROP EXTENSION hypopg")
        conn.execute("DROP EXTENSION pg_stat_statements")
        advised = conn.execute("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%%(object_repr)'").fetchall()
        for (name,) in advised:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("DELETE FROM django_migrations WHERE app = 'admin' AND name LIKE '%%dbops_i011%%'")


def test_an_index_is_advised_only_where_the_planner_would_use_it(statements_on_admin_log, tmp_path):
    report = run_insights(codes={"I011"})
    assert report.failed == {}
    advice = [i for i in report.insights if i.code == "I011"]
    assert [(i.object, i.model) for i in advice] == [
        ("index on public.django_admin_log (object_repr)", "admin.LogEntry.object_repr")
    ]
    detail = advice[0].detail
    assert detail["cost_after"] <= detail["cost_before"] / 2  # DBOPS_INSIGHTS_INDEX_SAVING_PERCENT: 50
    assert advice[0].fix == f"CREATE INDEX CONCURRENTLY {detail['index_name']} ON public.django_admin_log (object_repr)"

    written = write_fix_migrations(advice, tmp_path)
    assert "add models.Index(fields=['object_repr']" in written[0].note
    migration = load_admin_migration(written[0].path)
    executor = executor_with([migration])
    graded = analyze(nodes=[("admin", migration.name)], loader=executor.loader)
    assert [f for f in graded.findings if f.severity >= Severity.WARN] == []
    executor.apply_migration(executor.loader.project_state(), migration)
    assert [i for i in run_insights(codes={"I011"}).insights if i.code == "I011"] == []  # the planner has it now


def test_without_hypopg_one_line_says_how_to_install_it(statements_on_admin_log):
    with test_database_connection() as conn:
        conn.execute("DROP EXTENSION hypopg")
    try:
        [advice] = [i for i in run_insights(codes={"I011"}).insights]
        assert (advice.level, advice.object) == ("info", "extension hypopg")
        assert "postgresql-15-hypopg" in advice.fix
    finally:
        with test_database_connection() as conn:
            conn.execute("CREATE EXTENSION hypopg")

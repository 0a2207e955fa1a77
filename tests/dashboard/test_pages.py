"""Pages an operator lands on: the site root leads to the dashboard, charts start at the first sample."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


# -- 13: pages ---------------------------------------------------------------------------------------------------------
@pytest.mark.database
def test_site_root__leads_to_the_dashboard(client):
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/admin/dbops/dashboard/")


@pytest.mark.database
def test_chart__starts_at_the_first_sample_with_a_time_grid():
    import datetime

    from dbops.dashboard.charts import line_chart

    now = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.UTC)
    start = now - datetime.timedelta(minutes=5)
    svg = str(line_chart({"p95": [(start, 3.0), (now, 5.0)]}, start=start, end=now, budget=100))
    assert [f">11:{m}</text>" in svg for m in ("55", "56", "57", "58", "59")] == [True] * 5  # a label a minute
    assert svg.count('stroke="#e6e6e6"') >= 9  # vertical and horizontal grid lines

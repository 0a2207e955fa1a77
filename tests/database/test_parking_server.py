"""On a real gunicorn worker, requests reuse the connection their thread parked instead of checking one out each."""

from __future__ import annotations

import re

import pytest

from tests.parts.site import gunicorn, http_get, production_environ

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]

TOKEN = "scraper-token-" * 3


def metric(body: str, name: str) -> float:
    found = re.search(rf'^{name}\{{alias="default"\}} (\S+)$', body, re.M)
    assert found, f"{name} missing from /metrics"
    return float(found.group(1))


def test_parking__requests_on_gunicorn_reuse_their_threads_connections(tmp_path):
    # One worker, so the scrape refreshes the only pool there is (each worker copies its own pool's statistics).
    env = production_environ(
        tmp_path / "static",
        DJANGO_ROOT_URLCONF="bench.urls",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
        DBOPS_HEALTH_TOKEN=TOKEN,
    )
    requests = 40
    with gunicorn(env) as base:
        statuses = [http_get(base + "/bench/select-one")[0] for _ in range(requests)]
        status, body = http_get(base + "/metrics", headers={"Authorization": "Bearer " + TOKEN})

    assert statuses == [200] * requests
    assert status == 200
    checkouts = metric(body, "dbops_pool_checkouts")
    # Before parking every request checked a connection out (40 or more); now a thread takes one and keeps it.
    assert checkouts < requests / 2, f"{checkouts:.0f} checkouts for {requests} requests"

"""Query timing, slow-query log, pool gauges, rolling-window percentiles and /metrics, on the real cluster."""

from __future__ import annotations

import logging
import random
import re
import statistics
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection
from prometheus_client import REGISTRY

from dbops.monitoring import queries as monitoring
from dbops.monitoring.window import RollingWindow, percentile
from tests.conftest import reconfigured_pool
from tests.parts.site import gunicorn, http_get, production_environ

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_query_timer__counts_every_query_and_logs_slow_ones_without_literals(caplog):
    histogram_before = sample("dbops_query_duration_seconds_count", alias="default")
    slow_before = sample("dbops_slow_queries_total", alias="default")
    budget_before = sample("dbops_query_budget_violations_total", alias="default")

    with caplog.at_level(logging.WARNING, logger="dbops.slow_query"), connection.cursor() as cursor:
        for _ in range(5):
            cursor.execute("SELECT 1")
        cursor.execute("SELECT pg_sleep(%s), 'secret-literal', 4242", [0.25])

    assert sample("dbops_query_duration_seconds_count", alias="default") - histogram_before == 6
    assert sample("dbops_slow_queries_total", alias="default") - slow_before == 1
    assert sample("dbops_query_budget_violations_total", alias="default") - budget_before == 1
    lines = [vars(r) for r in caplog.records if r.name == "dbops.slow_query"]
    assert len(lines) == 1
    line = lines[0]
    assert line["sql"] == "SELECT pg_sleep(?), ?, ?"
    assert line["alias"] == "default"
    assert line["duration_ms"] >= 250
    assert line["threshold_ms"] == 200
    text = caplog.text
    assert "secret-literal" not in text and "4242" not in text and "0.25" not in text


def test_query_timer__names_the_view_that_ran_the_slow_query(client, caplog, settings):
    settings.ROOT_URLCONF = "bench.urls"
    with caplog.at_level(logging.WARNING, logger="dbops.slow_query"):
        assert client.get("/bench/sleep?ms=250").status_code == 200
    line = next(vars(r) for r in caplog.records if r.name == "dbops.slow_query")
    assert line["origin"] == "view:bench.urls.sleep"
    assert monitoring.current_origin.get() != line["origin"]  # the request's origin did not leak out


def test_query_timer__one_timer_per_connection_across_checkouts():
    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        connection.close()  # back to the pool; the next checkout fires connection_created again
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    timers = [w for w in connection.execute_wrappers if isinstance(w, monitoring.QueryTimer)]
    assert len(timers) == 1


def test_query_timer__threads_keep_their_own_timer():
    timers, barrier = [], threading.Barrier(3)

    def run():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        timers.append([w for w in connection.execute_wrappers if isinstance(w, monitoring.QueryTimer)])
        barrier.wait()  # all three alive at once: three distinct DatabaseWrapper objects
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [len(t) for t in timers] == [1, 1, 1]
    assert len({id(t[0]) for t in timers}) == 3


@pytest.mark.parametrize(
    ("sql", "normalized"),
    [
        ("SELECT * FROM t WHERE name = 'O''Brien' AND id = 42", "SELECT * FROM t WHERE name = ? AND id = ?"),
        (
            'SELECT "t1"."col2" FROM "t1" WHERE "t1"."id" IN (%s, %s, %s)',
            'SELECT "t1"."col2" FROM "t1" WHERE "t1"."id" IN (...)',
        ),
        ("SELECT $$secret$$, $tag$x$tag$, -1.5e3", "SELECT ?, ?, ?"),
        ("INSERT INTO t (a)\n   VALUES (%(a)s)", "INSERT INTO t (a) VALUES (?)"),
        # The forms a pattern-based normalizer leaked: escape strings, comments, a quote inside an identifier.
        ("SELECT E'it\\'s S3cretPw' FROM t", "SELECT ? FROM t"),
        ("SELECT 1 /* password S3cretPw */ -- S3cretPw\n", "SELECT ?"),
        ("SELECT \"it's\" FROM t WHERE k = 'S3cretPw'", 'SELECT "it\'s" FROM t WHERE k = ?'),
        ("SELECT a - 5, -5, U&'d\\0061t S3cretPw', B'1010', X'ff'", "SELECT a - ?, ?, ?, ?, ?"),
        ("SELECT 'unterminated S3cretPw", "(statement the SQL lexer cannot read: not shown)"),
    ],
)
def test_normalize_sql__strips_literals_parameters_and_comments(sql, normalized):
    assert monitoring.normalize_sql(sql) == normalized


def test_pool_gauges__track_a_real_concurrent_checkout(hold_connections):
    with reconfigured_pool(pool={"min_size": 1, "max_size": 4}):
        with hold_connections(3):
            monitoring.refresh_pool_metrics()
            in_use = sample("dbops_pool_in_use_connections", alias="default")
            maximum = sample("dbops_pool_max_connections", alias="default")
        monitoring.refresh_pool_metrics()
        after = sample("dbops_pool_in_use_connections", alias="default")
    assert (in_use, maximum, after) == (3, 4, 0)


def test_server_connections_gauge__counts_what_pg_stat_activity_shows(hold_connections):
    with reconfigured_pool(pool={"min_size": 1, "max_size": 4}), hold_connections(3):
        monitoring.refresh_server_metrics()
        assert sample("dbops_server_connections", alias="default") >= 3


def test_rolling_window__percentiles_match_a_reference():
    rng = random.Random(7)
    values = [rng.lognormvariate(1, 1) for _ in range(1001)]
    window = RollingWindow(max_samples=5000)
    for v in values:
        window.add(v)
    reference = statistics.quantiles(values, n=100, method="inclusive")
    summary = window.summary(budget_ms=5)
    assert summary["count"] == 1001
    assert summary["p50_ms"] == pytest.approx(reference[49], abs=1e-3)
    assert summary["p95_ms"] == pytest.approx(reference[94], abs=1e-3)
    assert summary["p99_ms"] == pytest.approx(reference[98], abs=1e-3)
    assert summary["within_budget"] == (reference[94] <= 5)
    assert percentile([], 95) == 0.0


def test_rolling_window__is_bounded_in_count_and_age():
    window = RollingWindow(max_samples=10, max_age=60)
    for i in range(25):
        window.add(float(i), now=1000.0)
    assert window.values(now=1000.0) == [float(i) for i in range(15, 25)]
    assert window.values(now=1061.0) == []


def test_performance_endpoint__reports_percentiles_slow_queries_pool_and_budget(client, settings):
    import dataclasses

    settings.DBOPS = dataclasses.replace(settings.DBOPS, health_token="perf-token")
    monitoring.query_windows["default"].clear()
    monitoring.slow_queries.clear()  # earlier tests' slow statements (migrations, sleeps) stay in the process
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.21)")
    report = client.get("/health/database/performance", HTTP_AUTHORIZATION="Bearer perf-token").json()
    default = report["databases"]["default"]
    assert default["queries"]["count"] >= 1
    assert default["slow_queries"] == 1
    assert default["queries"]["max_ms"] >= 210
    assert default["pool"]["pool_max"] > 0
    assert report["top_slow_queries"][0]["sql"] == "SELECT pg_sleep(?)"
    assert client.get("/health/database/performance").status_code == 401


def test_metrics_endpoint__loopback_or_token_only(client, settings):
    import dataclasses

    settings.DBOPS = dataclasses.replace(settings.DBOPS, health_token="metrics-token")
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 401
    assert (
        client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer metrics-token").status_code == 200
    )
    settings.DBOPS = dataclasses.replace(settings.DBOPS, metrics_allow_loopback=False)
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401


@pytest.mark.system
def test_gunicorn_multiprocess__metrics_aggregate_both_workers(tmp_path):
    multiproc = tmp_path / "prometheus"
    env = production_environ(
        tmp_path / "static",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        DJANGO_ROOT_URLCONF="bench.urls",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="2",
        DBOPS_HEALTH_TOKEN="scraper-token-" * 3,
    )
    requests = 60
    with gunicorn(env) as base:
        barrier = threading.Barrier(6)

        def hit(n):
            barrier.wait() if n < 6 else None
            return http_get(base + "/bench/select-one")[0]

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(hit, range(requests)))
        status, body = http_get(base + "/metrics", headers={"Authorization": "Bearer " + "scraper-token-" * 3})
        pids = {re.search(r"_(\d+)\.db$", p.name).group(1) for p in Path(multiproc).glob("histogram_*.db")}
    assert statuses == [200] * requests
    assert status == 200
    assert len(pids) == 2, "both workers served requests"
    count = float(re.search(r'^dbops_query_duration_seconds_count\{alias="default"\} (\S+)$', body, re.M).group(1))
    assert count == requests  # one SELECT 1 per request, summed over both workers
    pool_max = float(re.search(r'^dbops_pool_max_connections\{alias="default"\} (\S+)$', body, re.M).group(1))
    assert pool_max in (6.0, 12.0)  # livesum: 6 per worker that has opened its pool


class LocalReverseProxy:
    """A reverse proxy on this host, as nginx in front of gunicorn would be: every request arrives from loopback."""

    def __init__(self, upstream: str) -> None:
        import http.server
        import urllib.error
        import urllib.request

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept")}
                request = urllib.request.Request(upstream + self.path, headers=headers)  # noqa: S310 - loopback
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                        status, body = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, body = error.code, error.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.system
@pytest.mark.parametrize("trust_loopback", [None, "true"])
def test_metrics__behind_a_local_reverse_proxy_production_needs_the_token(tmp_path, trust_loopback):
    token = "scraper-token-" * 3
    extra = {"DBOPS_METRICS_ALLOW_LOOPBACK": trust_loopback} if trust_loopback else {}
    with gunicorn(production_environ(tmp_path / "static", DBOPS_HEALTH_TOKEN=token, **extra)) as base:
        proxy = LocalReverseProxy(base)
        try:
            anonymous = http_get(proxy.url + "/metrics")[0]
            with_token = http_get(proxy.url + "/metrics", headers={"Authorization": f"Bearer {token}"})[0]
        finally:
            proxy.close()
    assert with_token == 200
    assert anonymous == (200 if trust_loopback else 401)  # opted in explicitly (and dbops.W004 says so)

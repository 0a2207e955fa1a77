"""Prometheus collectors of dbops (module-level, so multiprocess mode can aggregate them across workers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

QUERY_DURATION = Histogram(
    "dbops_query_duration_seconds", "Duration of every database query.", ["alias"], buckets=QUERY_BUCKETS
)
SLOW_QUERIES = Counter("dbops_slow_queries", "Queries slower than DATABASE_SLOW_QUERY_THRESHOLD_MS.", ["alias"])
BUDGET_VIOLATIONS = Counter(
    "dbops_query_budget_violations", "Queries slower than DATABASE_PERFORMANCE_THRESHOLD_MS.", ["alias"]
)
REQUEST_DURATION = Histogram(
    "dbops_request_duration_seconds", "Duration of every HTTP request through Django.", buckets=QUERY_BUCKETS
)

# Pool state per worker process; "livesum" adds up the live workers, so the totals are what the server sees
# from this host. Cumulative pool counters are gauges for the same reason (a worker's counter dies with it).
POOL_STATS = {
    "pool_size": Gauge(
        "dbops_pool_connections", "Open connections in the pool.", ["alias"], multiprocess_mode="livesum"
    ),
    "pool_available": Gauge(
        "dbops_pool_idle_connections", "Idle connections in the pool.", ["alias"], multiprocess_mode="livesum"
    ),
    "in_use": Gauge(
        "dbops_pool_in_use_connections",
        "Connections checked out of the pool and not parked.",
        ["alias"],
        multiprocess_mode="livesum",
    ),
    "parked": Gauge(
        "dbops_pool_parked_connections",
        "Connections kept on a thread between its requests (back in the pool after a second unused).",
        ["alias"],
        multiprocess_mode="livesum",
    ),
    "pool_max": Gauge(
        "dbops_pool_max_connections", "Configured pool max_size.", ["alias"], multiprocess_mode="livesum"
    ),
    "requests_waiting": Gauge(
        "dbops_pool_requests_waiting", "Checkouts waiting for a connection.", ["alias"], multiprocess_mode="livesum"
    ),
    "requests_num": Gauge(
        "dbops_pool_checkouts", "Checkouts since the worker started.", ["alias"], multiprocess_mode="livesum"
    ),
    "requests_errors": Gauge(
        "dbops_pool_checkout_timeouts",
        "Checkouts that waited DATABASE_POOL_TIMEOUT and failed, since the worker started.",
        ["alias"],
        multiprocess_mode="livesum",
    ),
    "connections_errors": Gauge(
        "dbops_pool_connection_errors",
        "Failed attempts to open a server connection, since the worker started.",
        ["alias"],
        multiprocess_mode="livesum",
    ),
    "connections_lost": Gauge(
        "dbops_pool_connections_lost",
        "Connections found broken, since the worker started.",
        ["alias"],
        multiprocess_mode="livesum",
    ),
}
POOL_WAIT_SECONDS = Gauge(
    "dbops_pool_wait_seconds",
    "Total time checkouts waited for a connection, since the worker started.",
    ["alias"],
    multiprocess_mode="livesum",
)
SERVER_CONNECTIONS = Gauge(
    "dbops_server_connections",
    "Connections the server shows for this application_name (pg_stat_activity), all hosts included.",
    ["alias"],
    multiprocess_mode="mostrecent",
)

BREAKER_STATE = Gauge(
    "dbops_breaker_state", "1 for the circuit breaker's current state.", ["state"], multiprocess_mode="mostrecent"
)
BREAKER_TRANSITIONS = Counter("dbops_breaker_transitions", "Circuit-breaker transitions, by new state.", ["to"])
BREAKER_REJECTIONS = Counter(
    "dbops_breaker_rejections", "Requests answered 503 by the breaker without touching the database."
)
DATABASE_FAILURES = Counter(
    "dbops_database_failures", "Requests that failed because the database was unavailable (answered 503)."
)

SERVER_MAX_CONNECTIONS = Gauge(
    "dbops_server_max_connections", "The server's max_connections.", ["alias"], multiprocess_mode="mostrecent"
)
DATABASE_UP = Gauge(
    "dbops_database_up",
    "1 when the scrape's probe reached the database, else 0.",
    ["alias"],
    multiprocess_mode="mostrecent",
)
# History facts for alerting rules (read from dbops' tables at scrape time).
BACKUP_LAST_SUCCESS = Gauge(
    "dbops_backup_last_success_timestamp_seconds",
    "Start time of the newest successful backup (0: none yet).",
    multiprocess_mode="mostrecent",
)
BACKUP_LAST_FAILED = Gauge(
    "dbops_backup_last_failed", "1 when the newest finished backup failed.", multiprocess_mode="mostrecent"
)
BACKUP_VERIFICATION_FAILED = Gauge(
    "dbops_backup_last_verification_failed",
    "1 when the newest successful backup failed its restore verification.",
    multiprocess_mode="mostrecent",
)
MIGRATION_LAST_RUN_FAILED = Gauge(
    "dbops_migration_last_run_failed", "1 when the newest guarded migration run failed.", multiprocess_mode="mostrecent"
)

"""Every setting dbops reads: its name, type, default and meaning, written once.

`SettingsReader.get(name)` reads a value by this table (the environment for `from_env()`, a dict for
`configure()`), the configuration dataclasses take their defaults from `default(name)`, and a test holds
docs/configuration.md to it. A default that depends on other settings (the environment, BASE_DIR) is `DYNAMIC`:
its reader passes it, and `shown` is how the docs write it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

DYNAMIC: Any = object()  # the default depends on other settings: the reader gives it, `shown` describes it


@dataclasses.dataclass(frozen=True)
class Variable:
    name: str
    kind: str  # text, bool, int, float, path, list, json
    default: Any
    minimum: float = 1  # for int and float
    unit: str = ""  # for int: shown in the error line
    shown: str = ""  # how docs/configuration.md writes a DYNAMIC default
    meaning: str = ""


VARIABLES: dict[str, Variable] = {
    variable.name: variable
    for variable in (
        Variable(
            "DJANGO_ENV",
            "text",
            "development",
            meaning="development, test, staging or production (prod is an alias); staging and production are strict",
        ),
        Variable(
            "ALLOWED_HOSTS",
            "list",
            DYNAMIC,
            shown="`localhost,127.0.0.1,[::1],testserver`",
            meaning="Host names the site answers to, comma-separated; required when strict, and `*` is refused there",
        ),
        Variable(
            "CACHE_URL",
            "text",
            "locmem://",
            meaning="`redis://HOST:PORT/DB` shares breaker state between workers and hosts",
        ),
        Variable(
            "DATABASE_APPLICATION_NAME",
            "text",
            "dbops",
            meaning="`application_name` the server shows in `pg_stat_activity`",
        ),
        Variable(
            "DATABASE_BACKUP_DIR",
            "path",
            DYNAMIC,
            shown="`var/backups`",
            meaning='Folder of the default backup storage (`STORAGES["dbbackup"]`)',
        ),
        Variable("DATABASE_BACKUP_ENABLED", "bool", True, meaning="Backups on/off"),
        Variable(
            "DATABASE_BACKUP_ENCRYPTION_IDENTITY_FILE",
            "path",
            DYNAMIC,
            shown="unset",
            meaning="The age identity file (`AGE-SECRET-KEY-1...`) verification and restores decrypt with",
        ),
        Variable(
            "DATABASE_BACKUP_ENCRYPTION_RECIPIENTS",
            "list",
            (),
            meaning="age public keys (`age1...`, or SSH public keys), comma-separated",
        ),
        Variable("DATABASE_BACKUP_INTERVAL_HOURS", "int", 6, unit=" hours", meaning="Backup interval"),
        Variable(
            "DATABASE_BACKUP_UPLOAD_DEADLINE",
            "int",
            10800,
            unit=" seconds",
            meaning="Longest a backup's upload may take before the backup is recorded failed and its lock let go",
        ),
        Variable(
            "DATABASE_BACKUP_SIGNING_KEY",
            "text",
            "",
            meaning="Secret (32+ characters) that signs what each backup is; verify and restore refuse an unsigned "
            "or mis-signed backup while it is set",
        ),
        Variable(
            "DATABASE_BACKUP_KEEP_VERIFIED",
            "int",
            3,
            meaning="Retention never deletes the newest this-many verified successful backups",
        ),
        Variable(
            "DATABASE_BACKUP_LOCAL_COPY_DAYS",
            "int",
            0,
            minimum=0,
            unit=" days",
            meaning="With the bucket, keep each backup in DATABASE_BACKUP_DIR too, this many days (0: no copy)",
        ),
        Variable(
            "DATABASE_BACKUP_MAX_VERIFIED_AGE_HOURS",
            "int",
            48,
            unit=" hours",
            meaning="Health warns when a location's newest verified backup is older",
        ),
        Variable("DATABASE_BACKUP_RETENTION_DAYS", "int", 30, unit=" days", meaning="Backup retention"),
        Variable(
            "DATABASE_BACKUP_S3_ACCESS_KEY_ID",
            "text",
            "",
            meaning="Access key of the bucket (with the secret key; unset: boto3 finds credentials itself)",
        ),
        Variable(
            "DATABASE_BACKUP_S3_BUCKET",
            "text",
            "",
            meaning="Backups go to this S3 bucket (or S3-compatible store) instead of DATABASE_BACKUP_DIR",
        ),
        Variable(
            "DATABASE_BACKUP_S3_ENDPOINT_URL",
            "text",
            "",
            meaning="An S3-compatible endpoint (`https://s3.example.net`)",
        ),
        Variable("DATABASE_BACKUP_S3_PREFIX", "text", "dbops/", meaning="Key prefix of the backups in the bucket"),
        Variable(
            "DATABASE_BACKUP_S3_CA_FILE",
            "text",
            "",
            meaning="A private CA's certificate for the store: boto3's and pgBackRest's (one setting for both)",
        ),
        Variable(
            "DATABASE_BACKUP_S3_CONNECT_TIMEOUT",
            "int",
            5,
            unit=" seconds",
            meaning="Seconds to reach the store before a storage call fails",
        ),
        Variable(
            "DATABASE_BACKUP_S3_READ_TIMEOUT",
            "int",
            60,
            unit=" seconds",
            meaning="Seconds the store may stay silent within a call (a frozen store fails, it does not hang)",
        ),
        Variable("DATABASE_BACKUP_S3_REGION", "text", "us-east-1", meaning="The bucket's region"),
        Variable("DATABASE_BACKUP_S3_SECRET_ACCESS_KEY", "text", "", meaning="Its secret key"),
        Variable(
            "DATABASE_CLIENT_GRACE_SECONDS",
            "int",
            5,
            unit=" seconds",
            meaning="A request's statement unanswered after DATABASE_QUERY_TIMEOUT + this is cut client-side",
        ),
        Variable(
            "DATABASE_CONNECT_TIMEOUT",
            "int",
            3,
            minimum=2,
            unit=" seconds",
            meaning="Seconds to establish a server connection (libpq `connect_timeout`, minimum 2)",
        ),
        Variable(
            "DATABASE_ENGINE",
            "text",
            DYNAMIC,
            shown="from the URL scheme",
            meaning="Override the engine, e.g. `django_prometheus.db.backends.postgresql`",
        ),
        Variable(
            "DATABASE_HEALTH_CHECK_INTERVAL", "int", 30, unit=" seconds", meaning="Seconds between health evaluations"
        ),
        Variable("DATABASE_PERFORMANCE_THRESHOLD_MS", "int", 100, unit=" ms", meaning="Query latency budget (p95)"),
        Variable(
            "DATABASE_PGBOUNCER_ADMIN_URL",
            "text",
            "",
            meaning="PgBouncer admin console for the `PgBouncerPools` health check",
        ),
        Variable("DATABASE_PGBOUNCER_MODE", "text", "", meaning="`transaction`/`statement`"),
        Variable(
            "DATABASE_PITR_ENGINE",
            "text",
            "none",
            meaning="`pgbackrest` to enable the `pitr` commands and the `PitrWindow` health check",
        ),
        Variable(
            "DATABASE_PITR_MAX_ARCHIVE_AGE_SECONDS",
            "int",
            3600,
            unit=" seconds",
            meaning="Health warns when the latest restorable time is older",
        ),
        Variable("DATABASE_PITR_PG_PASSWORD", "text", "", meaning="Its password (given to pgBackRest as `PGPASSWORD`"),
        Variable("DATABASE_PITR_PG_PATH", "text", "", meaning="The server's data directory (required with pgbackrest"),
        Variable(
            "DATABASE_PITR_PG_SOCKET_PATH", "text", "/var/run/postgresql", meaning="The server's unix socket directory"
        ),
        Variable("DATABASE_PITR_PG_USER", "text", "", meaning="The maintenance user pgBackRest connects as"),
        Variable(
            "DATABASE_PITR_REPO_PATH",
            "path",
            DYNAMIC,
            shown="`var/pgbackrest`",
            meaning="Generated `pgbackrest.conf`, the repository, logs, locks",
        ),
        Variable("DATABASE_PITR_REPO_TYPE", "text", "posix", meaning="`s3`"),
        Variable("DATABASE_PITR_RETENTION_FULL", "int", 2, meaning="Full backups kept (with their WAL)"),
        Variable("DATABASE_PITR_RUN_AS", "text", "", meaning="OS user pgBackRest runs as (`sudo -n -u` when not root)"),
        Variable(
            "DATABASE_PITR_S3_CA_FILE",
            "text",
            "",
            meaning="pgBackRest's own CA file (`repo1-storage-ca-file`); unset: DATABASE_BACKUP_S3_CA_FILE",
        ),
        Variable(
            "DATABASE_PITR_S3_VERIFY_TLS",
            "bool",
            True,
            meaning="`false` only for a test store with a certificate nobody signed",
        ),
        Variable("DATABASE_PITR_STANZA", "text", "dbops", meaning="pgBackRest stanza"),
        Variable(
            "DATABASE_PITR_PG_DATABASE",
            "text",
            "postgres",
            meaning="The database pgBackRest connects to (pg1-database); its user's function grants go there",
        ),
        Variable("DATABASE_POOL_ENABLED", "bool", True, meaning="Django's native psycopg pool"),
        Variable(
            "DATABASE_POOL_MAX_OVERFLOW",
            "int",
            DYNAMIC,
            minimum=0,
            shown="`GUNICORN_THREADS` - `DATABASE_POOL_SIZE` (at least 0)",
            meaning="Extra connections under load (`max_size = SIZE + OVERFLOW`)",
        ),
        Variable(
            "DATABASE_POOL_RECYCLE",
            "int",
            3600,
            unit=" seconds",
            meaning="Seconds after which a connection is replaced (`max_lifetime`)",
        ),
        Variable("DATABASE_POOL_SIZE", "int", 2, meaning="Connections the pool keeps open (`min_size`)"),
        Variable(
            "DATABASE_POOL_TIMEOUT",
            "int",
            5,
            unit=" seconds",
            meaning="Seconds a request waits for a connection before failing (`timeout`)",
        ),
        Variable(
            "DATABASE_QUERY_TIMEOUT",
            "int",
            30,
            unit=" seconds",
            meaning="Seconds before PostgreSQL cancels a statement (`statement_timeout`, set per connection)",
        ),
        Variable(
            "DATABASE_REPLICA_MAX_LAG_MS",
            "int",
            1000,
            unit=" ms",
            meaning="Reads go to the replica only while its replay lag is below this",
        ),
        Variable("DATABASE_REPLICA_URL", "text", "", meaning="A streaming replica"),
        Variable(
            "DATABASE_SLOW_QUERY_THRESHOLD_MS",
            "int",
            200,
            unit=" ms",
            meaning="A query slower than this is a slow query",
        ),
        Variable("DATABASE_URL", "text", "", meaning="`postgres://USER:PASSWORD@HOST:PORT/NAME[?sslmode=…]`"),
        Variable(
            "DBOPS_ALERT_COOLDOWN_SECONDS",
            "int",
            900,
            minimum=0,
            unit=" seconds",
            meaning="A re-fire within this long after resolving reopens the alert silently",
        ),
        Variable("DBOPS_ALERT_EMAILS", "list", (), meaning="Comma-separated addresses (Django `ADMINS`)"),
        Variable(
            "DBOPS_ALERT_EVALUATE_INTERVAL", "int", 60, unit=" seconds", meaning="`alerts evaluate --loop` period"
        ),
        Variable(
            "DBOPS_ALERT_EVENTS",
            "bool",
            True,
            meaning="Raise breaker/backup/migration alerts at once, in a background thread",
        ),
        Variable(
            "DBOPS_ALERT_MIN_QUERIES",
            "int",
            20,
            meaning="Queries a process needs in its window before its p95 is judged",
        ),
        Variable("DBOPS_ALERT_POOL_UTILIZATION_PERCENT", "int", 80, unit=" %", meaning="`pool_utilization` threshold"),
        Variable("DBOPS_ALERT_SAMPLE_RETENTION_DAYS", "int", 7, unit=" days", meaning="Dashboard samples kept"),
        Variable("DBOPS_ALERT_SLOW_QUERIES_PER_MINUTE", "int", 10, meaning="`slow_query_rate` threshold"),
        Variable("DBOPS_ALERT_WEBHOOK_FORMAT", "text", "json", meaning='`json` (the alert) or `slack` (`{"text"'),
        Variable(
            "DBOPS_ALERT_WEBHOOK_RETRIES",
            "int",
            2,
            minimum=0,
            meaning="Retries of a failed webhook delivery (a 5xx or a timeout)",
        ),
        Variable(
            "DBOPS_ALERT_WEBHOOK_TIMEOUT", "int", 5, unit=" seconds", meaning="Seconds a webhook delivery may take"
        ),
        Variable("DBOPS_ALERT_WEBHOOK_URL", "text", "", meaning="http(s) URL receiving a POST per notification"),
        Variable("DBOPS_BREAKER_CACHE_ALIAS", "text", "default", meaning="Cache alias holding the shared state"),
        Variable(
            "DBOPS_BREAKER_COUNT_STATEMENT_TIMEOUTS",
            "bool",
            False,
            meaning="Whether statement timeouts count as failures",
        ),
        Variable("DBOPS_BREAKER_ENABLED", "bool", True, meaning="The circuit-breaker middleware"),
        Variable("DBOPS_BREAKER_EXEMPT_PATHS", "list", (), meaning="Path prefixes the breaker never refuses (default"),
        Variable("DBOPS_BREAKER_FAILURE_THRESHOLD", "int", 5, meaning="Consecutive database failures that open it"),
        Variable(
            "DBOPS_BREAKER_FAILURE_WINDOW",
            "int",
            30,
            unit=" seconds",
            meaning="Seconds after which counted failures expire",
        ),
        Variable(
            "DBOPS_BREAKER_PROBE_INTERVAL",
            "float",
            0.25,
            minimum=0.05,
            unit=" seconds",
            meaning="Seconds between probes while open (a worker serves again within about this of the return)",
        ),
        Variable(
            "DBOPS_BREAKER_RESET_TIMEOUT",
            "int",
            30,
            unit=" seconds",
            meaning="Longest open period without a successful probe",
        ),
        Variable(
            "DBOPS_COMMAND_PROCESSES",
            "int",
            2,
            minimum=0,
            meaning="Command processes connected at once besides the web workers (the evaluator, a backup)",
        ),
        Variable(
            "DBOPS_HEALTH_CONNECTIONS_WARN_PERCENT",
            "int",
            80,
            unit=" %",
            meaning="Server connections in use vs `max_connections` that warn (95 % fails)",
        ),
        Variable(
            "DBOPS_HEALTH_DATABASE_SIZE_WARN_MB",
            "int",
            0,
            minimum=0,
            unit=" MB (0: off)",
            meaning="Database size above warns (0",
        ),
        Variable(
            "DBOPS_HEALTH_IDLE_IN_TRANSACTION_SECONDS",
            "int",
            60,
            unit=" seconds",
            meaning="Sessions idle in transaction longer warn",
        ),
        Variable(
            "DBOPS_HEALTH_LOCK_WAIT_SECONDS",
            "int",
            10,
            unit=" seconds",
            meaning="Sessions blocked by locks longer warn",
        ),
        Variable(
            "DBOPS_HEALTH_LONG_TRANSACTION_SECONDS",
            "int",
            300,
            unit=" seconds",
            meaning="Transactions open longer warn",
        ),
        Variable(
            "DBOPS_HEALTH_PROBE_TIMEOUT",
            "int",
            2,
            unit=" seconds",
            meaning="Seconds within which `/health/ready` answers",
        ),
        Variable(
            "DBOPS_HEALTH_READY_CACHE_SECONDS",
            "int",
            3,
            minimum=0,
            unit=" seconds",
            meaning="Ready answers are reused this long (0",
        ),
        Variable("DBOPS_HEALTH_REPLICATION_LAG_SECONDS", "int", 30, unit=" seconds", meaning="Replica lag above warns"),
        Variable(
            "DBOPS_ENV_FILE",
            "text",
            "",
            meaning="A KEY=value file read at start-up (values literal; set variables win): cron reads no shell",
        ),
        Variable("DBOPS_HEALTH_TOKEN", "text", "", meaning="Bearer token for detail health endpoints and `/metrics`"),
        Variable(
            "DBOPS_LOGIN_ACCOUNT_FAILURE_LIMIT",
            "int",
            20,
            minimum=6,
            meaning="Wrong passwords for one account, from any addresses, that start a 15-minute cool-off for it",
        ),
        Variable(
            "DBOPS_TRUSTED_PROXY_COUNT",
            "int",
            0,
            minimum=0,
            meaning="Reverse proxies in front of the site that append X-Forwarded-For (a same-host nginx: 1); 0: the "
            "header is ignored",
        ),
        Variable(
            "DBOPS_LOCALDB_DIR",
            "path",
            DYNAMIC,
            shown="`var/postgres`",
            meaning="Data folder of the project-local cluster",
        ),
        Variable(
            "DBOPS_LOCALDB",
            "bool",
            False,
            meaning="Use dbops' project-local cluster when DATABASE_URL is unset (development and test only)",
        ),
        # 0: unset, the port `localdb start` recorded, else 54329.
        Variable("DBOPS_LOCALDB_PORT", "int", 0, minimum=1024, shown="`54329`", meaning="Its port (127.0.0.1 only)"),
        Variable(
            "DBOPS_METRICS_ALLOW_LOOPBACK",
            "bool",
            DYNAMIC,
            shown="`true` in development and test, else `false`",
            meaning="Serve /metrics to loopback clients without the token",
        ),
        Variable(
            "DBOPS_METRICS_PUBLIC", "bool", False, meaning="Serve /metrics to anyone (a private network in front of it)"
        ),
        Variable(
            "DBOPS_PATRONI_URLS", "list", (), meaning="Comma-separated Patroni REST API URLs (`http://db1:8008,...`)"
        ),
        Variable(
            "DBOPS_PROMETHEUS_REQUEST_METRICS",
            "bool",
            False,
            meaning="Add django-prometheus' request middleware (costly, see benchmarks)",
        ),
        Variable("DBOPS_QUERY_MONITORING", "bool", True, meaning="dbops' per-query timer and request middleware"),
        Variable(
            "DBOPS_VAR_DIR",
            "path",
            DYNAMIC,
            shown="`BASE_DIR/var`",
            meaning="Where dbops' default folders live (backups, the local cluster, pgBackRest's repository)",
        ),
        Variable(
            "DEBUG",
            "bool",
            DYNAMIC,
            shown="`true` in development, else `false`",
            meaning="`true` is refused in staging and production",
        ),
        Variable(
            "DJANGO_ALLOW_BENCHMARK_URLS",
            "bool",
            False,
            meaning="Lets staging/production serve `DJANGO_ROOT_URLCONF=bench.*` (benchmarks only)",
        ),
        Variable(
            "DJANGO_ROOT_URLCONF",
            "text",
            DYNAMIC,
            shown="`project.urls`",
            meaning="`bench.urls` adds public DB-bound sample endpoints for benchmarks only",
        ),
        Variable(
            "DJANGO_SECURE_HSTS_SECONDS",
            "int",
            DYNAMIC,
            minimum=0,
            unit=" s",
            shown="`31536000` when strict, else `0`",
            meaning="`Strict-Transport-Security` max-age (with subdomains)",
        ),
        Variable(
            "DJANGO_SECURE_SSL_REDIRECT",
            "bool",
            False,
            meaning="Redirect http to https in Django (usually the proxy's job)",
        ),
        Variable(
            "DJANGO_SESSION_COOKIE_AGE",
            "int",
            DYNAMIC,
            unit=" s",
            shown="`28800` (8 h) when strict, else two weeks",
            meaning="Staff sessions can restore the database",
        ),
        Variable("DJANGO_STATIC_ROOT", "path", DYNAMIC, shown="`var/static`", meaning="Where `collectstatic` writes"),
        Variable("EMAIL_URL", "text", "", meaning="`smtp://USER:PASSWORD@HOST:587`, `smtps://…`, `consolemail://`"),
        Variable("ENFORCE_POSTGRESQL", "bool", True, meaning="`true` enforces PostgreSQL + pool in staging/production"),
        Variable("GUNICORN_THREADS", "int", 4, meaning="Threads per worker (check `dbops.E001`"),
        Variable(
            "MIGRATION_BACKUP",
            "bool",
            True,
            meaning="Take a backup before `migration_apply`/`migration_rollback` (when backups are enabled)",
        ),
        Variable(
            "MIGRATION_LOCK_RETRIES",
            "int",
            3,
            minimum=0,
            meaning="Retries of a migration that timed out waiting for its lock",
        ),
        Variable(
            "MIGRATION_LOCK_RETRY_DELAY_MS", "int", 2000, minimum=0, unit=" ms", meaning="Wait between those retries"
        ),
        Variable(
            "MIGRATION_LOCK_TIMEOUT_MS", "int", 5000, unit=" ms", meaning="`lock_timeout` of the migration session"
        ),
        Variable(
            "MIGRATION_SAFETY_BLOCK_MB",
            "int",
            1024,
            minimum=0,
            unit=" MB",
            meaning="Table size from which a rewriting operation blocks",
        ),
        Variable(
            "MIGRATION_SAFETY_BLOCK_ROWS",
            "int",
            1_000_000,
            minimum=0,
            unit=" rows",
            meaning="Rows from which a rewriting or scanning operation blocks",
        ),
        Variable("MIGRATION_SAFETY_SUPPRESSIONS", "json", None, meaning='JSON `{"app.migration"'),
        Variable(
            "MIGRATION_SAFETY_WARN_MB", "int", 100, minimum=0, unit=" MB", meaning="Table size from which it warns"
        ),
        Variable(
            "MIGRATION_SAFETY_WARN_ROWS", "int", 10_000, minimum=0, unit=" rows", meaning="Rows from which it warns"
        ),
        Variable(
            "MIGRATION_STATEMENT_TIMEOUT",
            "int",
            1800,
            minimum=0,
            unit=" seconds (0: none)",
            meaning="`statement_timeout` of the migration session (`0`",
        ),
        Variable(
            "PG_BINDIR",
            "text",
            "",
            meaning="Folder with `initdb`/`pg_ctl` (else `pg_config --bindir`, else /usr/lib/postgresql/*/bin)",
        ),
        Variable(
            "PROMETHEUS_MULTIPROC_DIR",
            "text",
            "",
            meaning="Folder for multi-worker metrics (gunicorn.conf.py clears it at start)",
        ),
        Variable("SECRET_KEY", "text", "", meaning="**Required** when strict"),
        Variable("WEB_CONCURRENCY", "int", 2, meaning="Gunicorn workers (also used by check `dbops.E002`)"),
        Variable("DBOPS_INSIGHTS_STATEMENT_TIMEOUT", "float", 10.0, unit=" seconds", meaning="Per insight query"),
        Variable(
            "DBOPS_INSIGHTS_XID_AGE_WARN", "int", 1_000_000_000, unit=" transactions", meaning="I001 warn from this age"
        ),
        Variable(
            "DBOPS_INSIGHTS_XID_AGE_CRITICAL",
            "int",
            1_500_000_000,
            unit=" transactions",
            meaning="I001 critical from this age",
        ),
        Variable("DBOPS_INSIGHTS_SEQUENCE_WARN_PERCENT", "int", 75, unit=" %", meaning="I002 warn from this share"),
        Variable("DBOPS_INSIGHTS_SEQUENCE_CRITICAL_PERCENT", "int", 90, unit=" %", meaning="I002 critical from here"),
        Variable(
            "DBOPS_INSIGHTS_UNUSED_INDEX_DAYS", "int", 7, minimum=0, unit=" days", meaning="I005 statistics age needed"
        ),
        Variable(
            "DBOPS_INSIGHTS_UNUSED_INDEX_MIN_KB", "int", 1024, minimum=0, unit=" KB", meaning="I005 smallest index"
        ),
        Variable(
            "DBOPS_INSIGHTS_FOREIGN_KEY_MIN_ROWS", "int", 10_000, minimum=0, unit=" rows", meaning="I006 smallest table"
        ),
        Variable("DBOPS_INSIGHTS_DEAD_TUPLE_RATIO", "float", 0.2, minimum=0, meaning="I007 dead share of a table"),
        Variable("DBOPS_INSIGHTS_DEAD_TUPLES_MIN", "int", 10_000, minimum=0, unit=" rows", meaning="I007 fewest dead"),
        Variable(
            "DBOPS_INSIGHTS_SLOT_RETAINED_MB", "int", 1024, minimum=0, unit=" MB", meaning="I008 critical from this WAL"
        ),
        Variable("DBOPS_INSIGHTS_TOP_STATEMENTS", "int", 5, unit=" statements", meaning="I009 how many"),
        Variable("DBOPS_INSIGHTS_SLOW_STATEMENT_MS", "int", 500, unit=" ms", meaning="I009 warn from this mean"),
        Variable("DBOPS_INSIGHTS_CACHE_HIT_RATIO", "float", 0.99, minimum=0, meaning="I010 warn below this ratio"),
        Variable(
            "DBOPS_INSIGHTS_CACHE_MIN_BLOCKS", "int", 100_000, minimum=0, unit=" blocks", meaning="I010 reads needed"
        ),
        Variable(
            "DBOPS_INSIGHTS_REFRESH_SECONDS",
            "int",
            300,
            minimum=0,
            unit=" seconds",
            meaning="How old the shared report health, metrics, alerts and the dashboard read may be",
        ),
        Variable(
            "DBOPS_INSIGHTS_INDEX_SAVING_PERCENT",
            "int",
            50,
            minimum=1,
            unit=" %",
            meaning="I011 advises an index only when hypopg shows it cuts a statement's cost by this much",
        ),
    )
}


def default(name: str) -> Any:
    """Return the default of `name` (the configuration dataclasses' field defaults)."""
    value = VARIABLES[name].default
    if value is DYNAMIC:
        raise LookupError(f"{name}'s default depends on other settings: its reader passes it")
    return value

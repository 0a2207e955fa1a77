"""The typed, frozen configuration every part of dbops reads (`get_config()`), and its settings helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured

from dbops.conf.variables import default

ENVIRONMENTS = ("development", "test", "staging", "production")
ENVIRONMENT_ALIASES = {"prod": "production"}
STRICT_ENVIRONMENTS = ("staging", "production")
REPLICA_ALIAS = "replica"


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    """The seed's SQLAlchemy-style pool numbers, and their psycopg_pool translation."""

    enabled: bool
    size: int
    max_overflow: int
    timeout: int
    recycle: int

    def psycopg_pool_options(self, name: str) -> dict[str, Any]:
        """Translate to `psycopg_pool.ConnectionPool` arguments.

        psycopg_pool has no "overflow": it grows from min_size to max_size under load and closes connections
        above min_size after they sit idle for `max_idle` (600 s), which is what an overflow is.
        """
        return {
            "name": name,
            "min_size": self.size,
            "max_size": self.size + self.max_overflow,
            "timeout": float(self.timeout),
            "max_lifetime": float(self.recycle),
        }


@dataclasses.dataclass(frozen=True)
class DatabaseConfig:
    """One database alias: its Django settings (from a URL or a `DATABASES` entry) plus pool and timeouts."""

    masked_url: str
    engine: str
    pool: PoolConfig
    query_timeout: int
    connect_timeout: int
    application_name: str
    is_postgresql: bool
    # The Django settings entry holds the password: keep it out of reprs.
    entry: Mapping[str, Any] = dataclasses.field(repr=False)
    # "transaction"/"statement": PgBouncer pools server connections per transaction in front of the server.
    pgbouncer_mode: str = default("DATABASE_PGBOUNCER_MODE")
    # A request's statement the server has not answered after query_timeout + this is cut from the client side.
    client_grace: int = default("DATABASE_CLIENT_GRACE_SECONDS")

    @property
    def client_deadline(self) -> int:
        """Seconds after which a request's statement is cut client-side (the server enforces nothing if frozen)."""
        return self.query_timeout + self.client_grace

    def django_settings(self, alias: str = "default") -> dict[str, Any]:
        """Build the `DATABASES[alias]` entry: the given one with dbops' pool and timeouts applied."""
        settings = dict(self.entry)
        settings["ENGINE"] = self.engine
        settings["OPTIONS"] = dict(settings.get("OPTIONS") or {})
        if self.is_postgresql:
            # The native pool requires CONN_MAX_AGE=0; the pool itself decides connection lifetime.
            settings["CONN_MAX_AGE"] = 0
            options = settings["OPTIONS"]
            options.setdefault("application_name", self.application_name)
            options["connect_timeout"] = self.connect_timeout
            if self.pgbouncer_mode in ("transaction", "statement"):
                # Server connections change hands between transactions: no server-side cursors, no prepared
                # statements, no startup options (PgBouncer refuses them): set statement_timeout on the role.
                settings["DISABLE_SERVER_SIDE_CURSORS"] = True
                options["prepare_threshold"] = None
            else:
                statement_timeout = f"-c statement_timeout={self.query_timeout * 1000}"
                options["options"] = (
                    f"{options['options']} {statement_timeout}" if options.get("options") else statement_timeout
                )
            if self.pool.enabled:
                options["pool"] = self.pool.psycopg_pool_options(name=f"dbops-{alias}")
            else:
                options.pop("pool", None)
        return settings


@dataclasses.dataclass(frozen=True)
class LocalDbConfig:
    """The project-local PostgreSQL cluster used when DATABASE_URL is unset outside staging/production."""

    data_dir: Path
    port: int
    bindir: str | None = None
    password: str = dataclasses.field(default="", repr=False)

    @property
    def url(self) -> str:
        credentials = f"postgres:{quote(self.password, safe='')}" if self.password else "postgres"
        return f"postgres://{credentials}@127.0.0.1:{self.port}/dbops"

    @property
    def port_file(self) -> Path:
        """Where `localdb start` records the port, so later commands find the cluster without the variable."""
        return self.data_dir.with_name(f"{self.data_dir.name}.port")

    @property
    def password_file(self) -> Path:
        """Where `localdb start` keeps the superuser's password (0600), so later commands can connect."""
        return self.data_dir.with_name(f"{self.data_dir.name}.password")


@dataclasses.dataclass(frozen=True)
class HealthConfig:
    """Budgets and thresholds of the health checks."""

    probe_timeout: int = default("DBOPS_HEALTH_PROBE_TIMEOUT")
    ready_cache_seconds: int = default("DBOPS_HEALTH_READY_CACHE_SECONDS")
    connections_warn_percent: int = default("DBOPS_HEALTH_CONNECTIONS_WARN_PERCENT")
    long_transaction_seconds: int = default("DBOPS_HEALTH_LONG_TRANSACTION_SECONDS")
    idle_in_transaction_seconds: int = default("DBOPS_HEALTH_IDLE_IN_TRANSACTION_SECONDS")
    lock_wait_seconds: int = default("DBOPS_HEALTH_LOCK_WAIT_SECONDS")
    replication_lag_seconds: int = default("DBOPS_HEALTH_REPLICATION_LAG_SECONDS")
    database_size_warn_mb: int = default("DBOPS_HEALTH_DATABASE_SIZE_WARN_MB")


@dataclasses.dataclass(frozen=True)
class BreakerConfig:
    """The circuit breaker in front of the database."""

    enabled: bool = default("DBOPS_BREAKER_ENABLED")
    failure_threshold: int = default("DBOPS_BREAKER_FAILURE_THRESHOLD")
    failure_window: int = default("DBOPS_BREAKER_FAILURE_WINDOW")
    probe_interval: float = default("DBOPS_BREAKER_PROBE_INTERVAL")
    reset_timeout: int = default("DBOPS_BREAKER_RESET_TIMEOUT")
    count_statement_timeouts: bool = default("DBOPS_BREAKER_COUNT_STATEMENT_TIMEOUTS")
    # Empty: dbops' own health and metrics URLs and STATIC_URL, wherever the site mounts them.
    exempt_paths: tuple[str, ...] = default("DBOPS_BREAKER_EXEMPT_PATHS")
    cache_alias: str = default("DBOPS_BREAKER_CACHE_ALIAS")
    alias: str = "default"


@dataclasses.dataclass(frozen=True)
class MigrationSafetyConfig:
    """How migrations are graded and guarded."""

    warn_rows: int = default("MIGRATION_SAFETY_WARN_ROWS")
    block_rows: int = default("MIGRATION_SAFETY_BLOCK_ROWS")
    warn_mb: int = default("MIGRATION_SAFETY_WARN_MB")
    block_mb: int = default("MIGRATION_SAFETY_BLOCK_MB")
    lock_timeout_ms: int = default("MIGRATION_LOCK_TIMEOUT_MS")
    statement_timeout: int = default("MIGRATION_STATEMENT_TIMEOUT")
    lock_retries: int = default("MIGRATION_LOCK_RETRIES")
    lock_retry_delay_ms: int = default("MIGRATION_LOCK_RETRY_DELAY_MS")
    backup: bool = default("MIGRATION_BACKUP")
    # "app.migration" -> {rule code: reason}
    suppressions: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class InsightsConfig:
    """Thresholds of the database insights (I001-I010)."""

    statement_timeout: float = default("DBOPS_INSIGHTS_STATEMENT_TIMEOUT")
    xid_age_warn: int = default("DBOPS_INSIGHTS_XID_AGE_WARN")
    xid_age_critical: int = default("DBOPS_INSIGHTS_XID_AGE_CRITICAL")
    sequence_warn_percent: int = default("DBOPS_INSIGHTS_SEQUENCE_WARN_PERCENT")
    sequence_critical_percent: int = default("DBOPS_INSIGHTS_SEQUENCE_CRITICAL_PERCENT")
    unused_index_days: int = default("DBOPS_INSIGHTS_UNUSED_INDEX_DAYS")
    unused_index_min_kb: int = default("DBOPS_INSIGHTS_UNUSED_INDEX_MIN_KB")
    foreign_key_min_rows: int = default("DBOPS_INSIGHTS_FOREIGN_KEY_MIN_ROWS")
    dead_tuple_ratio: float = default("DBOPS_INSIGHTS_DEAD_TUPLE_RATIO")
    dead_tuples_min: int = default("DBOPS_INSIGHTS_DEAD_TUPLES_MIN")
    slot_retained_mb: int = default("DBOPS_INSIGHTS_SLOT_RETAINED_MB")
    top_statements: int = default("DBOPS_INSIGHTS_TOP_STATEMENTS")
    slow_statement_ms: int = default("DBOPS_INSIGHTS_SLOW_STATEMENT_MS")
    cache_hit_ratio: float = default("DBOPS_INSIGHTS_CACHE_HIT_RATIO")
    cache_min_blocks: int = default("DBOPS_INSIGHTS_CACHE_MIN_BLOCKS")
    refresh_seconds: int = default("DBOPS_INSIGHTS_REFRESH_SECONDS")
    index_saving_percent: int = default("DBOPS_INSIGHTS_INDEX_SAVING_PERCENT")


@dataclasses.dataclass(frozen=True)
class AlertConfig:
    """Alert thresholds, lifecycle and channels."""

    cooldown_seconds: int = default("DBOPS_ALERT_COOLDOWN_SECONDS")
    pool_utilization_percent: int = default("DBOPS_ALERT_POOL_UTILIZATION_PERCENT")
    slow_queries_per_minute: int = default("DBOPS_ALERT_SLOW_QUERIES_PER_MINUTE")
    min_queries: int = default("DBOPS_ALERT_MIN_QUERIES")
    evaluate_interval: int = default("DBOPS_ALERT_EVALUATE_INTERVAL")
    emails: tuple[str, ...] = ()
    webhook_url: str = dataclasses.field(default="", repr=False)
    webhook_format: str = default("DBOPS_ALERT_WEBHOOK_FORMAT")
    webhook_timeout: int = default("DBOPS_ALERT_WEBHOOK_TIMEOUT")
    webhook_retries: int = default("DBOPS_ALERT_WEBHOOK_RETRIES")
    sample_retention_days: int = default("DBOPS_ALERT_SAMPLE_RETENTION_DAYS")
    events: bool = default("DBOPS_ALERT_EVENTS")


@dataclasses.dataclass(frozen=True)
class PitrConfig:
    """Point-in-time recovery through pgBackRest, run on the database host."""

    engine: str = default("DATABASE_PITR_ENGINE")
    stanza: str = default("DATABASE_PITR_STANZA")
    repo_path: Path = Path("var/pgbackrest")
    pg_path: str = default("DATABASE_PITR_PG_PATH")
    socket_path: str = default("DATABASE_PITR_PG_SOCKET_PATH")
    retention_full: int = default("DATABASE_PITR_RETENTION_FULL")
    run_as: str = default("DATABASE_PITR_RUN_AS")
    max_archive_age: int = default("DATABASE_PITR_MAX_ARCHIVE_AGE_SECONDS")
    # The database user pgBackRest connects as (empty: DATABASE_URL's); it needs the grants setup-check prints.
    maintenance_user: str = default("DATABASE_PITR_PG_USER")
    maintenance_password: str = dataclasses.field(default="", repr=False)
    # "posix" (a folder on this host) or "s3": the repository in DATABASE_BACKUP_S3_*'s bucket, beside the dumps.
    repo_type: str = default("DATABASE_PITR_REPO_TYPE")
    repo_s3: BackupS3Config | None = None
    s3_verify_tls: bool = default("DATABASE_PITR_S3_VERIFY_TLS")
    s3_ca_file: str = default("DATABASE_PITR_S3_CA_FILE")
    pg_database: str = default("DATABASE_PITR_PG_DATABASE")

    @property
    def enabled(self) -> bool:
        return self.engine == "pgbackrest"


@dataclasses.dataclass(frozen=True)
class BackupS3Config:
    """Backups in an S3 bucket (or an S3-compatible store) through django-storages; credentials never shown."""

    bucket: str
    prefix: str = default("DATABASE_BACKUP_S3_PREFIX")
    endpoint_url: str = default("DATABASE_BACKUP_S3_ENDPOINT_URL")
    region: str = default("DATABASE_BACKUP_S3_REGION")
    access_key: str = dataclasses.field(default="", repr=False)
    secret_key: str = dataclasses.field(default="", repr=False)
    ca_file: str = default("DATABASE_BACKUP_S3_CA_FILE")
    connect_timeout: int = default("DATABASE_BACKUP_S3_CONNECT_TIMEOUT")
    read_timeout: int = default("DATABASE_BACKUP_S3_READ_TIMEOUT")

    def storage(self) -> dict[str, Any]:
        """Return the `STORAGES["dbbackup"]` entry for django-storages' S3 backend (uploads stream in parts).

        Every call has a deadline: a store that is down or frozen fails the call within the connect or read
        timeout (two attempts) instead of holding the backup lock for minutes.
        """
        from botocore.config import Config

        options: dict[str, Any] = {
            "bucket_name": self.bucket,
            "location": self.prefix.strip("/"),
            "region_name": self.region,
            "file_overwrite": False,  # a second file of the same name gets its own name, never replaces one
            "default_acl": None,  # the bucket's policy decides; objects are never public
            "querystring_auth": True,
            "client_config": Config(
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        }
        if self.ca_file:
            options["verify"] = self.ca_file
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.access_key:
            options["access_key"], options["secret_key"] = self.access_key, self.secret_key
        return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


@dataclasses.dataclass(frozen=True)
class DbopsConfig:
    """Every dbops setting, validated. Build it with `from_env()` or `configure()`, never by hand in settings."""

    environment: str
    database: DatabaseConfig
    enforce_postgresql: bool = default("ENFORCE_POSTGRESQL")
    enforcement_applies: bool = True
    database_url_from_env: bool = True
    localdb: LocalDbConfig | None = None
    performance_threshold_ms: int = default("DATABASE_PERFORMANCE_THRESHOLD_MS")
    slow_query_threshold_ms: int = default("DATABASE_SLOW_QUERY_THRESHOLD_MS")
    health_check_interval: int = default("DATABASE_HEALTH_CHECK_INTERVAL")
    backup_enabled: bool = default("DATABASE_BACKUP_ENABLED")
    backup_interval_hours: int = default("DATABASE_BACKUP_INTERVAL_HOURS")
    backup_retention_days: int = default("DATABASE_BACKUP_RETENTION_DAYS")
    health_token: str = dataclasses.field(default="", repr=False)
    web_workers: int = default("WEB_CONCURRENCY")
    web_threads: int = default("GUNICORN_THREADS")
    # Command processes connected at once besides the web workers (the alert evaluator, a backup): budgeted too.
    command_processes: int = default("DBOPS_COMMAND_PROCESSES")
    health: HealthConfig = HealthConfig()
    query_monitoring: bool = default("DBOPS_QUERY_MONITORING")
    prometheus_request_metrics: bool = default("DBOPS_PROMETHEUS_REQUEST_METRICS")
    metrics_public: bool = default("DBOPS_METRICS_PUBLIC")
    metrics_allow_loopback: bool = False  # DYNAMIC: the readers pass true outside staging and production
    prometheus_multiproc_dir: str = default("PROMETHEUS_MULTIPROC_DIR")
    cache: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    breaker: BreakerConfig = BreakerConfig()
    backup_dir: Path = Path("var/backups")
    backup_keep_verified: int = default("DATABASE_BACKUP_KEEP_VERIFIED")
    # With the bucket: also keep each dump in backup_dir for this many days (0: no local copy).
    backup_local_copy_days: int = default("DATABASE_BACKUP_LOCAL_COPY_DAYS")
    # Health warns when a location's newest verified backup is older (verification proves a copy restores).
    backup_max_verified_age_hours: int = default("DATABASE_BACKUP_MAX_VERIFIED_AGE_HOURS")
    # age public keys backups are encrypted to (empty: not encrypted), and where the key that reads them is.
    backup_encryption_recipients: tuple[str, ...] = ()
    backup_encryption_identity_file: Path | None = None
    # HMAC key that signs each backup's description (empty: backups are not signed). Never in a repr.
    backup_signing_key: str = dataclasses.field(default="", repr=False)
    backup_upload_deadline: int = default("DATABASE_BACKUP_UPLOAD_DEADLINE")
    trusted_proxy_count: int = default("DBOPS_TRUSTED_PROXY_COUNT")
    login_account_failure_limit: int = default("DBOPS_LOGIN_ACCOUNT_FAILURE_LIMIT")
    # Set: backups go to this bucket (DATABASE_BACKUP_S3_*), not to DATABASE_BACKUP_DIR.
    backup_s3: BackupS3Config | None = None
    migrations: MigrationSafetyConfig = MigrationSafetyConfig()
    insights: InsightsConfig = InsightsConfig()
    alerts: AlertConfig = AlertConfig()
    pitr: PitrConfig = PitrConfig()
    replica: DatabaseConfig | None = None
    replica_max_lag_ms: int = default("DATABASE_REPLICA_MAX_LAG_MS")
    pgbouncer_admin_url: str = dataclasses.field(default="", repr=False)
    # Patroni's REST API of each node (http://host:8008): health and the dashboard show the cluster as Patroni does.
    patroni_urls: tuple[str, ...] = ()
    # A site's own aliases that dbops does not manage, passed through `databases()` unchanged.
    other_databases: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def is_strict(self) -> bool:
        """Staging and production: PostgreSQL with the pool is mandatory."""
        return self.environment in STRICT_ENVIRONMENTS

    def databases(self) -> dict[str, dict[str, Any]]:
        """Return the `DATABASES` setting: dbops' pool and timeouts on default (and the replica)."""
        databases = {alias: dict(entry) for alias, entry in self.other_databases.items()}
        databases["default"] = self.database.django_settings("default")
        if self.replica is not None:
            # Tests mirror the replica onto the default database.
            databases[REPLICA_ALIAS] = {**self.replica.django_settings(REPLICA_ALIAS), "TEST": {"MIRROR": "default"}}
        return databases

    def database_routers(self) -> list[str]:
        """Return the `DATABASE_ROUTERS` dbops needs: the replica router when a replica is configured."""
        return ["dbops.replication.router.ReplicaRouter"] if self.replica is not None else []

    def backup_storage(self) -> dict[str, Any]:
        """Return the `STORAGES["dbbackup"]` entry: the bucket of DATABASE_BACKUP_S3_BUCKET, else DATABASE_BACKUP_DIR.

        Files 0600 and folders 0700 whatever the umask: dumps hold session keys and password hashes, and Django's
        storage would otherwise chmod every saved file to FILE_UPLOAD_PERMISSIONS (0644).
        """
        if self.backup_s3 is not None:
            return self.backup_s3.storage()
        return self.local_backup_storage()

    def local_backup_storage(self) -> dict[str, Any]:
        """Return the storage entry of DATABASE_BACKUP_DIR: the backups' home, or the local copy beside a bucket."""
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {
                "location": str(self.backup_dir),
                "file_permissions_mode": 0o600,
                "directory_permissions_mode": 0o700,
            },
        }

    def backup_locations(self) -> tuple[str, ...]:
        """Name where each backup is kept: "remote" (the bucket) and/or "local" (DATABASE_BACKUP_DIR)."""
        if self.backup_s3 is None:
            return ("local",)
        return ("remote", "local") if self.backup_local_copy_days else ("remote",)

    def middleware(self) -> list[str]:
        """Return dbops' middleware, to put first in `MIDDLEWARE` (the breaker must see every database failure)."""
        return [
            *(["dbops.monitoring.middleware.QueryMonitoringMiddleware"] if self.query_monitoring else []),
            *(["dbops.breaker.middleware.CircuitBreakerMiddleware"] if self.breaker.enabled else []),
            *(["dbops.replication.middleware.ReplicaRoutingMiddleware"] if self.replica is not None else []),
        ]


def get_config() -> DbopsConfig:
    """Return `settings.DBOPS`, the one validated configuration; a site without it gets one line saying how."""
    from django.conf import settings

    config = getattr(settings, "DBOPS", None)
    if not isinstance(config, DbopsConfig):
        raise ImproperlyConfigured(
            "settings.DBOPS is not a dbops configuration: add DBOPS = dbops.conf.from_env(base_dir=BASE_DIR) "
            "or dbops.conf.configure(...) to the settings (docs/adopting.md)."
        )
    return config

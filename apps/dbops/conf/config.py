"""The typed, frozen configuration every part of dbops reads (`get_config()`), and its settings helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured

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
    pgbouncer_mode: str = ""
    # A request's statement the server has not answered after query_timeout + this is cut from the client side.
    client_grace: int = 5

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

    probe_timeout: int = 2
    ready_cache_seconds: int = 3
    connections_warn_percent: int = 80
    long_transaction_seconds: int = 300
    idle_in_transaction_seconds: int = 60
    lock_wait_seconds: int = 10
    replication_lag_seconds: int = 30
    database_size_warn_mb: int = 0


@dataclasses.dataclass(frozen=True)
class BreakerConfig:
    """The circuit breaker in front of the database."""

    enabled: bool = True
    failure_threshold: int = 5
    failure_window: int = 30
    probe_interval: int = 1
    reset_timeout: int = 30
    count_statement_timeouts: bool = False
    # Empty: dbops' own health and metrics URLs and STATIC_URL, wherever the site mounts them.
    exempt_paths: tuple[str, ...] = ()
    cache_alias: str = "default"
    alias: str = "default"


@dataclasses.dataclass(frozen=True)
class MigrationSafetyConfig:
    """How migrations are graded and guarded."""

    warn_rows: int = 10_000
    block_rows: int = 1_000_000
    warn_mb: int = 100
    block_mb: int = 1024
    lock_timeout_ms: int = 5000
    statement_timeout: int = 1800
    lock_retries: int = 3
    lock_retry_delay_ms: int = 2000
    backup: bool = True
    # "app.migration" -> {rule code: reason}
    suppressions: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class AlertConfig:
    """Alert thresholds, lifecycle and channels."""

    cooldown_seconds: int = 900
    pool_utilization_percent: int = 80
    slow_queries_per_minute: int = 10
    min_queries: int = 20
    evaluate_interval: int = 60
    emails: tuple[str, ...] = ()
    webhook_url: str = dataclasses.field(default="", repr=False)
    webhook_format: str = "json"
    webhook_timeout: int = 5
    webhook_retries: int = 2
    sample_retention_days: int = 7
    events: bool = True


@dataclasses.dataclass(frozen=True)
class PitrConfig:
    """Point-in-time recovery through pgBackRest, run on the database host."""

    engine: str = "none"
    stanza: str = "dbops"
    repo_path: Path = Path("var/pgbackrest")
    pg_path: str = ""
    socket_path: str = "/var/run/postgresql"
    retention_full: int = 2
    run_as: str = ""
    max_archive_age: int = 3600
    # The database user pgBackRest connects as (empty: DATABASE_URL's); it needs the grants setup-check prints.
    maintenance_user: str = ""
    maintenance_password: str = dataclasses.field(default="", repr=False)
    # "posix" (a folder on this host) or "s3": the repository in DATABASE_BACKUP_S3_*'s bucket, beside the dumps.
    repo_type: str = "posix"
    repo_s3: BackupS3Config | None = None
    s3_verify_tls: bool = True
    s3_ca_file: str = ""  # a private CA's certificate for the store (pgBackRest's repo1-storage-ca-file)

    @property
    def enabled(self) -> bool:
        return self.engine == "pgbackrest"


@dataclasses.dataclass(frozen=True)
class BackupS3Config:
    """Backups in an S3 bucket (or an S3-compatible store) through django-storages; credentials never shown."""

    bucket: str
    prefix: str = "dbops/"
    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key: str = dataclasses.field(default="", repr=False)
    secret_key: str = dataclasses.field(default="", repr=False)

    def storage(self) -> dict[str, Any]:
        """Return the `STORAGES["dbbackup"]` entry for django-storages' S3 backend (uploads stream in parts)."""
        options: dict[str, Any] = {
            "bucket_name": self.bucket,
            "location": self.prefix.strip("/"),
            "region_name": self.region,
            "file_overwrite": False,  # a second file of the same name gets its own name, never replaces one
            "default_acl": None,  # the bucket's policy decides; objects are never public
            "querystring_auth": True,
        }
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
    enforce_postgresql: bool = True
    enforcement_applies: bool = True
    database_url_from_env: bool = True
    localdb: LocalDbConfig | None = None
    performance_threshold_ms: int = 100
    slow_query_threshold_ms: int = 200
    health_check_interval: int = 30
    backup_enabled: bool = True
    backup_interval_hours: int = 6
    backup_retention_days: int = 30
    health_token: str = dataclasses.field(default="", repr=False)
    web_workers: int = 2
    web_threads: int = 4
    # Command processes connected at once besides the web workers (the alert evaluator, a backup): budgeted too.
    command_processes: int = 2
    health: HealthConfig = HealthConfig()
    query_monitoring: bool = True
    prometheus_request_metrics: bool = False
    metrics_public: bool = False
    metrics_allow_loopback: bool = False
    prometheus_multiproc_dir: str = ""
    cache: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    breaker: BreakerConfig = BreakerConfig()
    backup_dir: Path = Path("var/backups")
    backup_keep_verified: int = 3
    # With the bucket: also keep each dump in backup_dir for this many days (0: no local copy).
    backup_local_copy_days: int = 0
    # Health warns when a location's newest verified backup is older (verification proves a copy restores).
    backup_max_verified_age_hours: int = 48
    # age public keys backups are encrypted to (empty: not encrypted), and where the key that reads them is.
    backup_encryption_recipients: tuple[str, ...] = ()
    backup_encryption_identity_file: Path | None = None
    # Set: backups go to this bucket (DATABASE_BACKUP_S3_*), not to DATABASE_BACKUP_DIR.
    backup_s3: BackupS3Config | None = None
    migrations: MigrationSafetyConfig = MigrationSafetyConfig()
    alerts: AlertConfig = AlertConfig()
    pitr: PitrConfig = PitrConfig()
    replica: DatabaseConfig | None = None
    replica_max_lag_ms: int = 1000
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

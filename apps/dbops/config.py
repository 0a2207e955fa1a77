"""Read and validate every dbops setting from the environment, once.

`load_config()` is the only place the process environment is read. It returns a frozen `DbopsConfig`;
everything else reads that. Every invalid value raises `ImproperlyConfigured` with a one-line message that
names the variable and the fix, and never contains a password.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

ENVIRONMENTS = ("development", "test", "staging", "production")
ENVIRONMENT_ALIASES = {"prod": "production"}
STRICT_ENVIRONMENTS = ("staging", "production")

INSECURE_SECRET_KEY = "django-insecure-dbops-development-only"  # noqa: S105 - the known-bad default
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql", "postgis")
PROJECT_DIR = Path(__file__).resolve().parents[2]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def mask_url(url: str) -> str:
    """Return `url` with any password replaced by `***` (works on unparseable URLs too)."""
    masked = re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", masked)


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
    """One database alias: the parsed URL plus the pool and timeout settings."""

    masked_url: str
    engine: str
    pool: PoolConfig
    query_timeout: int
    connect_timeout: int
    application_name: str
    # The parsed URL holds the password: keep it out of reprs.
    url_settings: dict[str, Any] = dataclasses.field(repr=False)
    # "transaction"/"statement": PgBouncer pools server connections per transaction in front of the server.
    pgbouncer_mode: str = ""

    @property
    def is_postgresql(self) -> bool:
        return self.url_settings.get("_scheme") in POSTGRES_SCHEMES

    def django_settings(self, alias: str = "default") -> dict[str, Any]:
        """Build the `DATABASES[alias]` entry."""
        settings = {k: v for k, v in self.url_settings.items() if not k.startswith("_")}
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
        return settings


@dataclasses.dataclass(frozen=True)
class LocalDbConfig:
    """The project-local PostgreSQL cluster used when DATABASE_URL is unset outside staging/production."""

    data_dir: Path
    port: int
    bindir: str | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/dbops"


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
    exempt_paths: tuple[str, ...] = ("/health/", "/metrics", "/static/")
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
    repo_path: Path = PROJECT_DIR / "var" / "pgbackrest"
    pg_path: str = ""
    socket_path: str = "/var/run/postgresql"
    retention_full: int = 2
    run_as: str = ""
    max_archive_age: int = 3600

    @property
    def enabled(self) -> bool:
        return self.engine == "pgbackrest"


def parse_cache_url(url: str, *, variable: str = "CACHE_URL") -> dict[str, Any]:
    """Build a `CACHES` entry: locmem:// or redis(s)://; Redis gets short timeouts (a cache must never hang)."""
    scheme = urlsplit(url).scheme
    if scheme == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": urlsplit(url).netloc or "dbops"}
    if scheme in ("redis", "rediss"):
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    raise ImproperlyConfigured(f"{variable}={mask_url(url)!r} is not supported: use locmem:// or redis://HOST:PORT/DB.")


@dataclasses.dataclass(frozen=True)
class DbopsConfig:
    """Every dbops setting, validated."""

    environment: str
    debug: bool
    secret_key: str = dataclasses.field(repr=False)
    allowed_hosts: tuple[str, ...] = ()
    enforce_postgresql: bool = True
    enforcement_applies: bool = True
    database: DatabaseConfig | None = None
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
    static_root: Path = PROJECT_DIR / "var" / "static"
    health: HealthConfig = HealthConfig()
    query_monitoring: bool = True
    prometheus_request_metrics: bool = False
    metrics_public: bool = False
    metrics_allow_loopback: bool = True
    prometheus_multiproc_dir: str = ""
    root_urlconf: str = "project.urls"
    cache: dict[str, Any] = dataclasses.field(default_factory=lambda: parse_cache_url("locmem://"), repr=False)
    breaker: BreakerConfig = BreakerConfig()
    backup_dir: Path = PROJECT_DIR / "var" / "backups"
    backup_keep_verified: int = 3
    migrations: MigrationSafetyConfig = MigrationSafetyConfig()
    alerts: AlertConfig = AlertConfig()
    pitr: PitrConfig = PitrConfig()
    replica: DatabaseConfig | None = None
    replica_max_lag_ms: int = 1000
    pgbouncer_admin_url: str = dataclasses.field(default="", repr=False)
    email: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def is_strict(self) -> bool:
        """Staging and production: PostgreSQL with the pool is mandatory."""
        return self.environment in STRICT_ENVIRONMENTS


class _Reader:
    """Typed reads of one environment mapping through django-environ, each failure one named line."""

    def __init__(self, environ_mapping: Mapping[str, str]) -> None:
        self.env = environ.Env()
        self.env.ENVIRON = dict(environ_mapping)

    def raw(self, name: str) -> str | None:
        value = self.env.ENVIRON.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def str(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def bool(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: set it to true or false.")

    def int(self, name: str, default: int, *, minimum: int = 1, unit: str = "") -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = self.env.int(name)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}={value!r} is not a whole number: set it to an integer >= {minimum}{unit}."
            ) from None
        if number < minimum:
            problem = "negative" if number < 0 else "zero" if number == 0 else f"below {minimum}"
            raise ImproperlyConfigured(f"{name}={number} is {problem}: set it to an integer >= {minimum}{unit}.")
        return number

    def suppressions(self, name: str) -> dict[str, dict[str, str]]:
        """Read `{"app.migration": {"CODE": "reason"}}`: every suppression must give a reason."""
        value = self.raw(name)
        if value is None:
            return {}
        example = '{"shop.0007_order_index": {"M005": "built off-hours on 2026-01-05"}}'
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name} is not valid JSON: set it like {example}.") from None
        if not isinstance(parsed, dict):
            raise ImproperlyConfigured(f"{name} must be a JSON object: set it like {example}.")
        for migration, rules in parsed.items():
            if "." not in migration or not isinstance(rules, dict):
                raise ImproperlyConfigured(
                    f'{name}: {migration!r} must be "app_label.migration_name" mapping rule codes to reasons, '
                    f"like {example}."
                )
            for code, reason in rules.items():
                if not isinstance(reason, str) or not reason.strip():
                    raise ImproperlyConfigured(
                        f"{name}: {migration} {code} has no reason: every suppression must say why it is safe."
                    )
        return {
            migration: {code: reason.strip() for code, reason in rules.items()} for migration, rules in parsed.items()
        }

    def list(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        return tuple(item.strip() for item in value.split(",") if item.strip())


def _parse_environment(reader: _Reader) -> str:
    value = reader.str("DJANGO_ENV", "development").lower()
    value = ENVIRONMENT_ALIASES.get(value, value)
    if value not in ENVIRONMENTS:
        raise ImproperlyConfigured(
            f"DJANGO_ENV={value!r} is not a known environment: use one of {', '.join(ENVIRONMENTS)} (or prod)."
        )
    return value


def parse_database_url(url: str, *, variable: str = "DATABASE_URL") -> dict[str, Any]:
    """Parse a database URL with django-environ, turning each of its silent failures into one masked line."""
    masked = mask_url(url)
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme not in environ.Env.DB_SCHEMES:
        raise ImproperlyConfigured(
            f"{variable}={masked!r} has no supported scheme: use postgres://USER:PASSWORD@HOST:PORT/NAME."
        )
    query_keys = {key.lower() for key, _ in parse_qsl(urlsplit(url).query)}
    if "pool" in query_keys:
        raise ImproperlyConfigured(
            f"{variable}={masked!r} sets ?pool=: remove it; the pool is configured by the DATABASE_POOL_* variables."
        )
    try:
        parsed = environ.Env.db_url_config(url)
    except (ValueError, TypeError):
        # The original exception text can quote the URL, password included: drop it.
        raise ImproperlyConfigured(
            f"{variable}={masked!r} cannot be parsed (check the host, the port number and any % escapes)."
        ) from None
    if scheme in POSTGRES_SCHEMES and not parsed.get("NAME"):
        raise ImproperlyConfigured(f"{variable}={masked!r} names no database: add /DBNAME after the host.")
    _check_hosts(parsed, masked, variable)
    parsed["_scheme"] = scheme
    return parsed


TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")


def _check_hosts(parsed: dict[str, Any], masked: str, variable: str) -> None:
    """Validate libpq's multi-host form (h1:5432,h2:5432): as many ports as hosts, or one for all."""
    hosts = [h for h in str(parsed.get("HOST") or "").split(",")]
    ports = [p for p in str(parsed.get("PORT") or "").split(",") if p != ""]
    if len(hosts) > 1 and any(not h or (":" in h and not h.startswith("[")) for h in hosts):
        raise ImproperlyConfigured(f"{variable}={masked!r} has an empty or malformed host in its host list.")
    if len(ports) not in (0, 1, len(hosts)) or not all(p.isdigit() and 0 < int(p) < 65536 for p in ports):
        raise ImproperlyConfigured(
            f"{variable}={masked!r}: give one port per host (h1:5432,h2:5432) or none, each 1-65535."
        )
    attrs = (parsed.get("OPTIONS") or {}).get("target_session_attrs")
    if attrs is not None and attrs not in TARGET_SESSION_ATTRS:
        raise ImproperlyConfigured(
            f"{variable}={masked!r}: target_session_attrs={attrs!r} is not one of {', '.join(TARGET_SESSION_ATTRS)}."
        )


def _parse_database(reader: _Reader, url: str) -> DatabaseConfig:
    url_settings = parse_database_url(url)
    engine = reader.str("DATABASE_ENGINE", url_settings["ENGINE"])
    pool = PoolConfig(
        enabled=reader.bool("DATABASE_POOL_ENABLED", True),
        size=reader.int("DATABASE_POOL_SIZE", 20),
        max_overflow=reader.int("DATABASE_POOL_MAX_OVERFLOW", 10, minimum=0),
        timeout=reader.int("DATABASE_POOL_TIMEOUT", 5, unit=" seconds"),
        recycle=reader.int("DATABASE_POOL_RECYCLE", 3600, unit=" seconds"),
    )
    return DatabaseConfig(
        masked_url=mask_url(url),
        engine=engine,
        pool=pool,
        query_timeout=reader.int("DATABASE_QUERY_TIMEOUT", 30, unit=" seconds"),
        # libpq treats 1 as 2: the smallest useful connect timeout is 2 s.
        connect_timeout=reader.int("DATABASE_CONNECT_TIMEOUT", 3, minimum=2, unit=" seconds"),
        application_name=reader.str("DATABASE_APPLICATION_NAME", "dbops"),
        url_settings=url_settings,
        pgbouncer_mode=_parse_pgbouncer_mode(reader),
    )


def _parse_alerts(reader: _Reader) -> AlertConfig:
    webhook = reader.raw("DBOPS_ALERT_WEBHOOK_URL") or ""
    if webhook and urlsplit(webhook).scheme not in ("http", "https"):
        raise ImproperlyConfigured(
            f"DBOPS_ALERT_WEBHOOK_URL={mask_url(webhook)!r} is not an http(s) URL: set it to https://host/path."
        )
    webhook_format = reader.str("DBOPS_ALERT_WEBHOOK_FORMAT", "json").lower()
    if webhook_format not in ("json", "slack"):
        raise ImproperlyConfigured(f"DBOPS_ALERT_WEBHOOK_FORMAT={webhook_format!r} is not json or slack.")
    emails = reader.list("DBOPS_ALERT_EMAILS", ())
    for address in emails:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
            raise ImproperlyConfigured(f"DBOPS_ALERT_EMAILS: {address!r} is not an e-mail address.")
    return AlertConfig(
        cooldown_seconds=reader.int("DBOPS_ALERT_COOLDOWN_SECONDS", 900, minimum=0, unit=" seconds"),
        pool_utilization_percent=reader.int("DBOPS_ALERT_POOL_UTILIZATION_PERCENT", 80, unit=" %"),
        slow_queries_per_minute=reader.int("DBOPS_ALERT_SLOW_QUERIES_PER_MINUTE", 10),
        min_queries=reader.int("DBOPS_ALERT_MIN_QUERIES", 20),
        evaluate_interval=reader.int("DBOPS_ALERT_EVALUATE_INTERVAL", 60, unit=" seconds"),
        emails=emails,
        webhook_url=webhook,
        webhook_format=webhook_format,
        webhook_timeout=reader.int("DBOPS_ALERT_WEBHOOK_TIMEOUT", 5, unit=" seconds"),
        webhook_retries=reader.int("DBOPS_ALERT_WEBHOOK_RETRIES", 2, minimum=0),
        sample_retention_days=reader.int("DBOPS_ALERT_SAMPLE_RETENTION_DAYS", 7, unit=" days"),
        events=reader.bool("DBOPS_ALERT_EVENTS", True),
    )


def _parse_replica(reader: _Reader, primary: DatabaseConfig, *, required_by: str) -> DatabaseConfig | None:
    """Return the optional read replica: same pool and timeouts as the primary, its own URL."""
    url = reader.raw("DATABASE_REPLICA_URL")
    if url is None:
        return None
    replica = dataclasses.replace(
        primary, masked_url=mask_url(url), url_settings=parse_database_url(url, variable="DATABASE_REPLICA_URL")
    )
    if not replica.is_postgresql:
        raise ImproperlyConfigured("DATABASE_REPLICA_URL must be a PostgreSQL URL (postgres://...): it replicates one.")
    if required_by:
        enforce_postgresql(replica.django_settings("replica"), required_by=required_by, variable="DATABASE_REPLICA_URL")
    return replica


def _parse_pgbouncer_mode(reader: _Reader) -> str:
    mode = reader.str("DATABASE_PGBOUNCER_MODE", "").lower()
    if mode not in ("", "session", "transaction", "statement"):
        raise ImproperlyConfigured(f"DATABASE_PGBOUNCER_MODE={mode!r} is not session, transaction or statement.")
    return mode


def _parse_pitr(reader: _Reader) -> PitrConfig:
    engine = reader.str("DATABASE_PITR_ENGINE", "none").lower()
    if engine not in ("none", "pgbackrest"):
        raise ImproperlyConfigured(f"DATABASE_PITR_ENGINE={engine!r} is not pgbackrest or none.")
    pg_path = reader.raw("DATABASE_PITR_PG_PATH") or ""
    if engine == "pgbackrest" and not pg_path.startswith("/"):
        raise ImproperlyConfigured(
            "DATABASE_PITR_PG_PATH must be the server's data directory (an absolute path) with "
            "DATABASE_PITR_ENGINE=pgbackrest: pgBackRest runs on the database host."
        )
    stanza = reader.str("DATABASE_PITR_STANZA", "dbops")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", stanza):
        raise ImproperlyConfigured(f"DATABASE_PITR_STANZA={stanza!r}: use letters, digits, '_', '.', '-'.")
    return PitrConfig(
        engine=engine,
        stanza=stanza,
        repo_path=Path(reader.str("DATABASE_PITR_REPO_PATH", str(PROJECT_DIR / "var" / "pgbackrest"))),
        pg_path=pg_path,
        socket_path=reader.str("DATABASE_PITR_PG_SOCKET_PATH", "/var/run/postgresql"),
        retention_full=reader.int("DATABASE_PITR_RETENTION_FULL", 2),
        run_as=reader.str("DATABASE_PITR_RUN_AS", ""),
        max_archive_age=reader.int("DATABASE_PITR_MAX_ARCHIVE_AGE_SECONDS", 3600, unit=" seconds"),
    )


def _parse_email_url(reader: _Reader) -> dict[str, Any]:
    """Django's EMAIL_* settings from EMAIL_URL (smtp://, smtps://, consolemail://, ...); empty when unset."""
    url = reader.raw("EMAIL_URL")
    if url is None:
        return {}
    try:
        parsed = environ.Env.email_url_config(url)
    except Exception:
        parsed = {}
    if not parsed.get("EMAIL_BACKEND"):
        raise ImproperlyConfigured(
            f"EMAIL_URL={mask_url(url)!r} is not a mail URL: use smtp://USER:PASSWORD@HOST:587 (or smtps://, "
            "consolemail://)."
        )
    return parsed


def load_config(environ_mapping: Mapping[str, str]) -> DbopsConfig:
    """Validate the environment into a `DbopsConfig`; raise `ImproperlyConfigured` on the first bad value."""
    reader = _Reader(environ_mapping)
    environment = _parse_environment(reader)
    strict = environment in STRICT_ENVIRONMENTS

    enforce = reader.bool("ENFORCE_POSTGRESQL", True)
    if strict and not enforce:
        raise ImproperlyConfigured(
            f"ENFORCE_POSTGRESQL=false is not allowed when DJANGO_ENV={environment}: remove it "
            "(it only relaxes development and test)."
        )

    # The database comes first: it is what enforcement is about.
    localdb = LocalDbConfig(
        data_dir=Path(reader.str("DBOPS_LOCALDB_DIR", str(PROJECT_DIR / "var" / "postgres"))),
        port=reader.int("DBOPS_LOCALDB_PORT", 54329, minimum=1024),
        bindir=reader.raw("PG_BINDIR"),
    )
    url = reader.raw("DATABASE_URL")
    if url is None and strict:
        raise ImproperlyConfigured(
            f"DATABASE_URL is not set with DJANGO_ENV={environment}: set it to postgres://USER:PASSWORD@HOST:PORT/NAME."
        )
    database = _parse_database(reader, url or localdb.url)
    # Default true means "enforce in staging/production"; development and test get strictness only when
    # ENFORCE_POSTGRESQL=true is set explicitly.
    enforcement_applies = strict or (enforce and reader.raw("ENFORCE_POSTGRESQL") is not None)
    if enforcement_applies:
        enforce_postgresql(
            database.django_settings(),
            required_by=f"DJANGO_ENV={environment}" if strict else "ENFORCE_POSTGRESQL=true",
        )

    debug = reader.bool("DEBUG", environment == "development")
    if environment == "production" and debug:
        raise ImproperlyConfigured("DEBUG=true is not allowed when DJANGO_ENV=production: set DEBUG=false.")

    secret_key = reader.raw("SECRET_KEY") or ""
    if strict and secret_key in ("", INSECURE_SECRET_KEY):
        raise ImproperlyConfigured(
            f"SECRET_KEY is {'empty' if not secret_key else 'the development default'} with DJANGO_ENV={environment}: "
            'set it to a long random value (python -c "import secrets; print(secrets.token_urlsafe(50))").'
        )

    allowed_hosts = reader.list("ALLOWED_HOSTS", () if strict else ("localhost", "127.0.0.1", "[::1]", "testserver"))
    if strict and not allowed_hosts:
        raise ImproperlyConfigured(
            f"ALLOWED_HOSTS is empty with DJANGO_ENV={environment}: set it to the site's host names, comma-separated."
        )

    return DbopsConfig(
        environment=environment,
        debug=debug,
        secret_key=secret_key or INSECURE_SECRET_KEY,
        allowed_hosts=allowed_hosts,
        enforce_postgresql=enforce,
        enforcement_applies=enforcement_applies,
        database=database,
        database_url_from_env=url is not None,
        localdb=localdb,
        performance_threshold_ms=reader.int("DATABASE_PERFORMANCE_THRESHOLD_MS", 100, unit=" ms"),
        slow_query_threshold_ms=reader.int("DATABASE_SLOW_QUERY_THRESHOLD_MS", 200, unit=" ms"),
        health_check_interval=reader.int("DATABASE_HEALTH_CHECK_INTERVAL", 30, unit=" seconds"),
        backup_enabled=reader.bool("DATABASE_BACKUP_ENABLED", True),
        backup_interval_hours=reader.int("DATABASE_BACKUP_INTERVAL_HOURS", 6, unit=" hours"),
        backup_retention_days=reader.int("DATABASE_BACKUP_RETENTION_DAYS", 30, unit=" days"),
        health_token=reader.raw("DBOPS_HEALTH_TOKEN") or "",
        web_workers=reader.int("WEB_CONCURRENCY", 2),
        web_threads=reader.int("GUNICORN_THREADS", 4),
        static_root=Path(reader.str("DJANGO_STATIC_ROOT", str(PROJECT_DIR / "var" / "static"))),
        query_monitoring=reader.bool("DBOPS_QUERY_MONITORING", True),
        prometheus_request_metrics=reader.bool("DBOPS_PROMETHEUS_REQUEST_METRICS", False),
        metrics_public=reader.bool("DBOPS_METRICS_PUBLIC", False),
        metrics_allow_loopback=reader.bool("DBOPS_METRICS_ALLOW_LOOPBACK", True),
        prometheus_multiproc_dir=reader.str("PROMETHEUS_MULTIPROC_DIR", ""),
        root_urlconf=reader.str("DJANGO_ROOT_URLCONF", "project.urls"),
        backup_dir=Path(reader.str("DATABASE_BACKUP_DIR", str(PROJECT_DIR / "var" / "backups"))),
        backup_keep_verified=reader.int("DATABASE_BACKUP_KEEP_VERIFIED", 3, minimum=0),
        cache=parse_cache_url(reader.str("CACHE_URL", "locmem://")),
        alerts=_parse_alerts(reader),
        pitr=_parse_pitr(reader),
        replica=_parse_replica(reader, database, required_by=f"DJANGO_ENV={environment}" if strict else ""),
        replica_max_lag_ms=reader.int("DATABASE_REPLICA_MAX_LAG_MS", 1000, unit=" ms"),
        pgbouncer_admin_url=reader.raw("DATABASE_PGBOUNCER_ADMIN_URL") or "",
        email=_parse_email_url(reader),
        migrations=MigrationSafetyConfig(
            warn_rows=reader.int("MIGRATION_SAFETY_WARN_ROWS", 10_000, minimum=0, unit=" rows"),
            block_rows=reader.int("MIGRATION_SAFETY_BLOCK_ROWS", 1_000_000, minimum=0, unit=" rows"),
            warn_mb=reader.int("MIGRATION_SAFETY_WARN_MB", 100, minimum=0, unit=" MB"),
            block_mb=reader.int("MIGRATION_SAFETY_BLOCK_MB", 1024, minimum=0, unit=" MB"),
            lock_timeout_ms=reader.int("MIGRATION_LOCK_TIMEOUT_MS", 5000, unit=" ms"),
            statement_timeout=reader.int("MIGRATION_STATEMENT_TIMEOUT", 1800, minimum=0, unit=" seconds (0: none)"),
            lock_retries=reader.int("MIGRATION_LOCK_RETRIES", 3, minimum=0),
            lock_retry_delay_ms=reader.int("MIGRATION_LOCK_RETRY_DELAY_MS", 2000, minimum=0, unit=" ms"),
            backup=reader.bool("MIGRATION_BACKUP", True),
            suppressions=reader.suppressions("MIGRATION_SAFETY_SUPPRESSIONS"),
        ),
        breaker=BreakerConfig(
            enabled=reader.bool("DBOPS_BREAKER_ENABLED", True),
            failure_threshold=reader.int("DBOPS_BREAKER_FAILURE_THRESHOLD", 5),
            failure_window=reader.int("DBOPS_BREAKER_FAILURE_WINDOW", 30, unit=" seconds"),
            probe_interval=reader.int("DBOPS_BREAKER_PROBE_INTERVAL", 1, unit=" seconds"),
            reset_timeout=reader.int("DBOPS_BREAKER_RESET_TIMEOUT", 30, unit=" seconds"),
            count_statement_timeouts=reader.bool("DBOPS_BREAKER_COUNT_STATEMENT_TIMEOUTS", False),
            exempt_paths=reader.list("DBOPS_BREAKER_EXEMPT_PATHS", ("/health/", "/metrics", "/static/")),
            cache_alias=reader.str("DBOPS_BREAKER_CACHE_ALIAS", "default"),
        ),
        health=HealthConfig(
            probe_timeout=reader.int("DBOPS_HEALTH_PROBE_TIMEOUT", 2, unit=" seconds"),
            ready_cache_seconds=reader.int("DBOPS_HEALTH_READY_CACHE_SECONDS", 3, minimum=0, unit=" seconds"),
            connections_warn_percent=reader.int("DBOPS_HEALTH_CONNECTIONS_WARN_PERCENT", 80, unit=" %"),
            long_transaction_seconds=reader.int("DBOPS_HEALTH_LONG_TRANSACTION_SECONDS", 300, unit=" seconds"),
            idle_in_transaction_seconds=reader.int("DBOPS_HEALTH_IDLE_IN_TRANSACTION_SECONDS", 60, unit=" seconds"),
            lock_wait_seconds=reader.int("DBOPS_HEALTH_LOCK_WAIT_SECONDS", 10, unit=" seconds"),
            replication_lag_seconds=reader.int("DBOPS_HEALTH_REPLICATION_LAG_SECONDS", 30, unit=" seconds"),
            database_size_warn_mb=reader.int("DBOPS_HEALTH_DATABASE_SIZE_WARN_MB", 0, minimum=0, unit=" MB (0: off)"),
        ),
    )


def _backend_wrapper_class(engine: str) -> type | None:
    try:
        return import_module(f"{engine}.base").DatabaseWrapper
    except (ImportError, AttributeError, ImproperlyConfigured):  # e.g. the MySQL backend without mysqlclient
        return None


def enforce_postgresql(database: Mapping[str, Any], *, required_by: str, variable: str = "DATABASE_URL") -> None:
    """Refuse a `DATABASES` entry that is not PostgreSQL through psycopg 3 with Django's native pool."""
    from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    engine = database.get("ENGINE", "")
    wrapper = _backend_wrapper_class(engine)
    if wrapper is None or not issubclass(wrapper, PostgresWrapper):
        raise ImproperlyConfigured(
            f"{variable} uses engine {engine!r}, but {required_by} requires PostgreSQL with pooling: "
            "set it to postgres://USER:PASSWORD@HOST:PORT/NAME."
        )
    if not is_psycopg3:
        raise ImproperlyConfigured(
            f"{required_by} requires psycopg 3 for pooling, but psycopg2 is in use: pip install 'psycopg[binary,pool]'."
        )
    if not (database.get("OPTIONS") or {}).get("pool"):
        raise ImproperlyConfigured(
            f"DATABASE_POOL_ENABLED is off, but {required_by} requires PostgreSQL with Django's native pool: "
            "remove DATABASE_POOL_ENABLED=false."
        )
    if database.get("CONN_MAX_AGE", 0) != 0:
        raise ImproperlyConfigured("CONN_MAX_AGE must be 0 with Django's native pool: the pool manages connections.")

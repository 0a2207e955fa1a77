"""The two ways a site configures dbops, one validator behind both.

`from_env()` reads the process environment (django-environ); `configure()` takes a site's own `DATABASES` and a
plain dict whose keys are the same names. Every value is checked here once; a bad one raises
`ImproperlyConfigured` with one line that names it and the fix, and never contains a password.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from dbops.conf.age_keys import parse_recipient
from dbops.conf.config import (
    ENVIRONMENT_ALIASES,
    ENVIRONMENTS,
    REPLICA_ALIAS,
    STRICT_ENVIRONMENTS,
    AlertConfig,
    BackupS3Config,
    BreakerConfig,
    DatabaseConfig,
    DbopsConfig,
    HealthConfig,
    LocalDbConfig,
    MigrationSafetyConfig,
    PitrConfig,
    PoolConfig,
)
from dbops.conf.databases import (
    DBOPS_POSTGRES_ENGINE,
    DJANGO_POSTGRES_ENGINE,
    describe_entry,
    enforce_postgresql,
    is_postgresql_engine,
    is_postgresql_url,
    parse_database_url,
)
from dbops.conf.masking import credentials_need_encoding, encoding_hint, mask_url

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class SettingsReader:
    """Typed reads of one mapping (the environment, or a settings dict), each failure one named line."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def raw(self, name: str) -> str | None:
        """Return the value as text (None when unset or blank); Python values are written as the environment would."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | tuple):
            value = ",".join(str(item) for item in value)
        elif isinstance(value, dict):
            value = json.dumps(value)
        value = str(value).strip()
        return value or None

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
            number = int(value)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}={value!r} is not a whole number: set it to an integer >= {minimum}{unit}."
            ) from None
        if number < minimum:
            problem = "negative" if number < 0 else "zero" if number == 0 else f"below {minimum}"
            raise ImproperlyConfigured(f"{name}={number} is {problem}: set it to an integer >= {minimum}{unit}.")
        return number

    def path(self, name: str, default: Path) -> Path:
        return Path(self.raw(name) or default)

    def list(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        return tuple(item.strip() for item in value.split(",") if item.strip())

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

    def environment(self) -> str:
        value = self.str("DJANGO_ENV", "development").lower()
        value = ENVIRONMENT_ALIASES.get(value, value)
        if value not in ENVIRONMENTS:
            raise ImproperlyConfigured(
                f"DJANGO_ENV={value!r} is not a known environment: use one of {', '.join(ENVIRONMENTS)} (or prod)."
            )
        return value


def parse_cache_url(url: str, *, variable: str = "CACHE_URL") -> dict[str, Any]:
    """Build a `CACHES` entry: locmem:// or redis(s)://; Redis gets short timeouts (a cache must never hang)."""
    if credentials_need_encoding(url):
        raise ImproperlyConfigured(encoding_hint(variable, url))
    scheme = url.partition("://")[0].lower()
    if scheme == "locmem":
        return {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": url.partition("://")[2] or "dbops",
        }
    if scheme in ("redis", "rediss"):
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    raise ImproperlyConfigured(f"{variable}={mask_url(url)!r} is not supported: use locmem:// or redis://HOST:PORT/DB.")


def _pool(reader: SettingsReader) -> PoolConfig:
    return PoolConfig(
        enabled=reader.bool("DATABASE_POOL_ENABLED", True),
        size=reader.int("DATABASE_POOL_SIZE", 20),
        max_overflow=reader.int("DATABASE_POOL_MAX_OVERFLOW", 10, minimum=0),
        timeout=reader.int("DATABASE_POOL_TIMEOUT", 5, unit=" seconds"),
        recycle=reader.int("DATABASE_POOL_RECYCLE", 3600, unit=" seconds"),
    )


def _database(reader: SettingsReader, entry: Mapping[str, Any], masked: str, is_postgresql: bool) -> DatabaseConfig:
    mode = reader.str("DATABASE_PGBOUNCER_MODE", "").lower()
    if mode not in ("", "session", "transaction", "statement"):
        raise ImproperlyConfigured(f"DATABASE_PGBOUNCER_MODE={mode!r} is not session, transaction or statement.")
    engine = reader.str("DATABASE_ENGINE", entry.get("ENGINE", ""))
    return DatabaseConfig(
        masked_url=masked,
        engine=DBOPS_POSTGRES_ENGINE if engine == DJANGO_POSTGRES_ENGINE else engine,
        pool=_pool(reader),
        query_timeout=reader.int("DATABASE_QUERY_TIMEOUT", 30, unit=" seconds"),
        # libpq treats 1 as 2: the smallest useful connect timeout is 2 s.
        connect_timeout=reader.int("DATABASE_CONNECT_TIMEOUT", 3, minimum=2, unit=" seconds"),
        application_name=reader.str("DATABASE_APPLICATION_NAME", "dbops"),
        is_postgresql=is_postgresql,
        entry=dict(entry),
        pgbouncer_mode=mode,
        client_grace=reader.int("DATABASE_CLIENT_GRACE_SECONDS", 5, unit=" seconds"),
    )


def _database_from_url(reader: SettingsReader, url: str, *, variable: str = "DATABASE_URL") -> DatabaseConfig:
    return _database(reader, parse_database_url(url, variable=variable), mask_url(url), is_postgresql_url(url))


def _database_from_entry(reader: SettingsReader, entry: Mapping[str, Any], alias: str) -> DatabaseConfig:
    if not isinstance(entry, Mapping) or not entry.get("ENGINE"):
        raise ImproperlyConfigured(f"DATABASES[{alias!r}] has no ENGINE: give a complete Django database entry.")
    if isinstance((entry.get("OPTIONS") or {}).get("pool"), Mapping):
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['OPTIONS']['pool'] is set: remove it and give DATABASE_POOL_SIZE, "
            "DATABASE_POOL_MAX_OVERFLOW, DATABASE_POOL_TIMEOUT, DATABASE_POOL_RECYCLE in dbops' settings instead."
        )
    return _database(reader, entry, describe_entry(entry), is_postgresql_engine(str(entry["ENGINE"])))


def _health_token(reader: SettingsReader, *, environment: str) -> str:
    token = reader.raw("DBOPS_HEALTH_TOKEN") or ""
    if token and environment in STRICT_ENVIRONMENTS and len(token) < 32:
        raise ImproperlyConfigured(
            f"DBOPS_HEALTH_TOKEN is {len(token)} characters with DJANGO_ENV={environment}: use 32 or more "
            '(python -c "import secrets; print(secrets.token_urlsafe(32))").'
        )
    return token


def _is_loopback_url(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _alerts(reader: SettingsReader, *, environment: str) -> AlertConfig:
    webhook = reader.raw("DBOPS_ALERT_WEBHOOK_URL") or ""
    if webhook and credentials_need_encoding(webhook):
        raise ImproperlyConfigured(encoding_hint("DBOPS_ALERT_WEBHOOK_URL", webhook))
    scheme = webhook.partition("://")[0].lower()
    if webhook and scheme not in ("http", "https"):
        raise ImproperlyConfigured(
            f"DBOPS_ALERT_WEBHOOK_URL={mask_url(webhook)!r} is not an http(s) URL: set it to https://host/path."
        )
    if scheme == "http" and environment in STRICT_ENVIRONMENTS and not _is_loopback_url(webhook):
        raise ImproperlyConfigured(
            f"DBOPS_ALERT_WEBHOOK_URL={mask_url(webhook)!r} is plain http with DJANGO_ENV={environment}: alerts "
            "carry details of the site, use https:// (plain http only to a relay on this host)."
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


def _encryption_recipients(reader: SettingsReader) -> tuple[str, ...]:
    recipients = reader.list("DATABASE_BACKUP_ENCRYPTION_RECIPIENTS", ())
    for position, recipient in enumerate(recipients, start=1):
        try:
            parse_recipient(recipient)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"DATABASE_BACKUP_ENCRYPTION_RECIPIENTS: recipient {position} is {exc}: "
                "give age public keys (age-keygen -y KEYFILE), comma-separated."
            ) from None
    return recipients


def _pgbouncer_admin_url(reader: SettingsReader) -> str:
    url = reader.raw("DATABASE_PGBOUNCER_ADMIN_URL") or ""
    if url:
        parse_database_url(url, variable="DATABASE_PGBOUNCER_ADMIN_URL")
    return url


def _backup_s3(reader: SettingsReader, *, environment: str) -> BackupS3Config | None:
    bucket = reader.str("DATABASE_BACKUP_S3_BUCKET", "")
    if not bucket:
        return None
    endpoint = reader.raw("DATABASE_BACKUP_S3_ENDPOINT_URL") or ""
    if endpoint and (credentials_need_encoding(endpoint) or "@" in endpoint.partition("://")[2]):
        raise ImproperlyConfigured(
            "DATABASE_BACKUP_S3_ENDPOINT_URL holds credentials: set DATABASE_BACKUP_S3_ACCESS_KEY_ID and "
            "DATABASE_BACKUP_S3_SECRET_ACCESS_KEY instead."
        )
    scheme = endpoint.partition("://")[0].lower()
    if endpoint and scheme not in ("http", "https"):
        raise ImproperlyConfigured(f"DATABASE_BACKUP_S3_ENDPOINT_URL={endpoint!r} is not an http(s) URL.")
    if scheme == "http" and environment in STRICT_ENVIRONMENTS and not _is_loopback_url(endpoint):
        raise ImproperlyConfigured(
            f"DATABASE_BACKUP_S3_ENDPOINT_URL={endpoint!r} is plain http with DJANGO_ENV={environment}: backups "
            "hold every row of the database, use https:// (plain http only to a store on this host)."
        )
    access_key = reader.raw("DATABASE_BACKUP_S3_ACCESS_KEY_ID") or ""
    secret_key = reader.raw("DATABASE_BACKUP_S3_SECRET_ACCESS_KEY") or ""
    if bool(access_key) != bool(secret_key):
        raise ImproperlyConfigured(
            "DATABASE_BACKUP_S3_ACCESS_KEY_ID and DATABASE_BACKUP_S3_SECRET_ACCESS_KEY go together (or set "
            "neither and let boto3 find the credentials: an instance role, AWS_* variables)."
        )
    return BackupS3Config(
        bucket=bucket,
        prefix=reader.str("DATABASE_BACKUP_S3_PREFIX", "dbops/"),
        endpoint_url=endpoint,
        region=reader.str("DATABASE_BACKUP_S3_REGION", "us-east-1"),
        access_key=access_key,
        secret_key=secret_key,
    )


def _local_copy_days(reader: SettingsReader, backup_s3: BackupS3Config | None) -> int:
    days = reader.int("DATABASE_BACKUP_LOCAL_COPY_DAYS", 0, minimum=0, unit=" days")
    if days and backup_s3 is None:
        raise ImproperlyConfigured(
            "DATABASE_BACKUP_LOCAL_COPY_DAYS keeps a local copy beside the bucket: set DATABASE_BACKUP_S3_BUCKET "
            "(without a bucket every backup is local already)."
        )
    return days


def _patroni_urls(reader: SettingsReader) -> tuple[str, ...]:
    urls = reader.list("DBOPS_PATRONI_URLS", ())
    for url in urls:
        if credentials_need_encoding(url) or url.partition("://")[0].lower() not in ("http", "https"):
            raise ImproperlyConfigured(
                f"DBOPS_PATRONI_URLS: {mask_url(url)!r} is not an http(s) URL of a Patroni REST API (http://HOST:8008)."
            )
    return tuple(url.rstrip("/") for url in urls)


def _pitr(reader: SettingsReader, var_dir: Path, backup_s3: BackupS3Config | None) -> PitrConfig:
    # Every PITR problem in one line: fixing them one run at a time is how operators gave up on set-up.
    problems = []
    engine = reader.str("DATABASE_PITR_ENGINE", "none").lower()
    if engine not in ("none", "pgbackrest"):
        problems.append(f"DATABASE_PITR_ENGINE={engine!r} is not pgbackrest or none")
    pg_path = reader.raw("DATABASE_PITR_PG_PATH") or ""
    if engine == "pgbackrest" and not pg_path.startswith("/"):
        problems.append(
            "DATABASE_PITR_PG_PATH must be the server's data directory (an absolute path) with "
            "DATABASE_PITR_ENGINE=pgbackrest: pgBackRest runs on the database host"
        )
    stanza = reader.str("DATABASE_PITR_STANZA", "dbops")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", stanza):
        problems.append(f"DATABASE_PITR_STANZA={stanza!r}: use letters, digits, '_', '.', '-'")
    repo_type = reader.str("DATABASE_PITR_REPO_TYPE", "posix").lower()
    if repo_type not in ("posix", "s3"):
        problems.append(f"DATABASE_PITR_REPO_TYPE={repo_type!r} is not posix or s3")
    elif repo_type == "s3" and backup_s3 is None:
        problems.append("DATABASE_PITR_REPO_TYPE=s3 keeps the repository in DATABASE_BACKUP_S3_BUCKET: set it")
    elif repo_type == "s3" and backup_s3.endpoint_url.lower().startswith("http://"):
        problems.append("DATABASE_PITR_REPO_TYPE=s3: pgBackRest speaks only https to a store, not http://")
    maintenance_user = reader.str("DATABASE_PITR_PG_USER", "")
    maintenance_password = reader.raw("DATABASE_PITR_PG_PASSWORD") or ""
    if maintenance_password and not maintenance_user:
        problems.append("DATABASE_PITR_PG_PASSWORD without DATABASE_PITR_PG_USER: name the maintenance user")
    if problems:
        raise ImproperlyConfigured("; ".join(problems) + ".")
    return PitrConfig(
        engine=engine,
        stanza=stanza,
        repo_path=reader.path("DATABASE_PITR_REPO_PATH", var_dir / "pgbackrest"),
        pg_path=pg_path,
        socket_path=reader.str("DATABASE_PITR_PG_SOCKET_PATH", "/var/run/postgresql"),
        retention_full=reader.int("DATABASE_PITR_RETENTION_FULL", 2),
        run_as=reader.str("DATABASE_PITR_RUN_AS", ""),
        max_archive_age=reader.int("DATABASE_PITR_MAX_ARCHIVE_AGE_SECONDS", 3600, unit=" seconds"),
        maintenance_user=maintenance_user,
        maintenance_password=maintenance_password,
        repo_type=repo_type,
        repo_s3=backup_s3 if repo_type == "s3" else None,
        s3_verify_tls=reader.bool("DATABASE_PITR_S3_VERIFY_TLS", True),
        s3_ca_file=reader.str("DATABASE_PITR_S3_CA_FILE", ""),
    )


def _localdb(reader: SettingsReader, var_dir: Path) -> LocalDbConfig:
    data_dir = reader.path("DBOPS_LOCALDB_DIR", var_dir / "postgres")
    port = reader.int("DBOPS_LOCALDB_PORT", 0, minimum=1024)
    if not port:
        # A cluster made earlier on another port recorded it: find it again without the variable.
        recorded = LocalDbConfig(data_dir=data_dir, port=0).port_file
        try:
            port = int(recorded.read_text().strip())
        except (OSError, ValueError):
            port = 54329
    try:
        password = LocalDbConfig(data_dir=data_dir, port=port).password_file.read_text().strip()
    except OSError:
        password = ""  # not created yet (or an older cluster that trusts local connections)
    return LocalDbConfig(data_dir=data_dir, port=port, bindir=reader.raw("PG_BINDIR"), password=password)


def _build(
    reader: SettingsReader,
    *,
    base_dir: Path | str,
    entries: Mapping[str, Mapping[str, Any]] | None,
) -> DbopsConfig:
    """Validate every dbops setting; `entries` is the site's own DATABASES (None: DATABASE_URL)."""
    var_dir = reader.path("DBOPS_VAR_DIR", Path(base_dir) / "var")
    environment = reader.environment()
    strict = environment in STRICT_ENVIRONMENTS
    required_by = f"DJANGO_ENV={environment}" if strict else "ENFORCE_POSTGRESQL=true"

    enforce = reader.bool("ENFORCE_POSTGRESQL", True)
    if strict and not enforce:
        raise ImproperlyConfigured(
            f"ENFORCE_POSTGRESQL=false is not allowed when DJANGO_ENV={environment}: remove it "
            "(it only relaxes development and test)."
        )
    # Default true means "enforce in staging/production"; development and test get strictness only when
    # ENFORCE_POSTGRESQL=true is set explicitly.
    enforcement_applies = strict or (enforce and reader.raw("ENFORCE_POSTGRESQL") is not None)

    # The database comes first: it is what enforcement is about.
    localdb = _localdb(reader, var_dir)
    other_databases: dict[str, Mapping[str, Any]] = {}
    if entries is None:
        url = reader.raw("DATABASE_URL")
        if url is None and strict:
            raise ImproperlyConfigured(
                f"DATABASE_URL is not set with DJANGO_ENV={environment}: "
                "set it to postgres://USER:PASSWORD@HOST:PORT/NAME."
            )
        database = _database_from_url(reader, url or localdb.url)
        replica_url = reader.raw("DATABASE_REPLICA_URL")
        replica = _database_from_url(reader, replica_url, variable="DATABASE_REPLICA_URL") if replica_url else None
        url_from_settings = url is not None
        variable, replica_variable = "DATABASE_URL", "DATABASE_REPLICA_URL"
    else:
        if reader.raw("DATABASE_URL") or reader.raw("DATABASE_REPLICA_URL"):
            raise ImproperlyConfigured(
                "DATABASE_URL is given with databases=: give the site's DATABASES only (dbops applies its pool)."
            )
        if "default" not in entries:
            raise ImproperlyConfigured("DATABASES has no 'default' entry: dbops manages the default database.")
        database = _database_from_entry(reader, entries["default"], "default")
        replica = (
            _database_from_entry(reader, entries[REPLICA_ALIAS], REPLICA_ALIAS) if REPLICA_ALIAS in entries else None
        )
        other_databases = {alias: entry for alias, entry in entries.items() if alias not in ("default", REPLICA_ALIAS)}
        url_from_settings = True
        variable, replica_variable = "DATABASES['default']", f"DATABASES[{REPLICA_ALIAS!r}]"
    if enforcement_applies:
        enforce_postgresql(database.django_settings(), required_by=required_by, variable=variable)
    if replica is not None:
        if not replica.is_postgresql:
            raise ImproperlyConfigured(f"{replica_variable} must be PostgreSQL (postgres://...): it replicates one.")
        if strict:
            enforce_postgresql(
                replica.django_settings(REPLICA_ALIAS), required_by=required_by, variable=replica_variable
            )

    backup_s3 = _backup_s3(reader, environment=environment)
    return DbopsConfig(
        environment=environment,
        database=database,
        enforce_postgresql=enforce,
        enforcement_applies=enforcement_applies,
        database_url_from_env=url_from_settings,
        localdb=localdb,
        other_databases=other_databases,
        performance_threshold_ms=reader.int("DATABASE_PERFORMANCE_THRESHOLD_MS", 100, unit=" ms"),
        slow_query_threshold_ms=reader.int("DATABASE_SLOW_QUERY_THRESHOLD_MS", 200, unit=" ms"),
        health_check_interval=reader.int("DATABASE_HEALTH_CHECK_INTERVAL", 30, unit=" seconds"),
        backup_enabled=reader.bool("DATABASE_BACKUP_ENABLED", True),
        backup_interval_hours=reader.int("DATABASE_BACKUP_INTERVAL_HOURS", 6, unit=" hours"),
        backup_retention_days=reader.int("DATABASE_BACKUP_RETENTION_DAYS", 30, unit=" days"),
        health_token=_health_token(reader, environment=environment),
        web_workers=reader.int("WEB_CONCURRENCY", 2),
        web_threads=reader.int("GUNICORN_THREADS", 4),
        command_processes=reader.int("DBOPS_COMMAND_PROCESSES", 2, minimum=0),
        query_monitoring=reader.bool("DBOPS_QUERY_MONITORING", True),
        prometheus_request_metrics=reader.bool("DBOPS_PROMETHEUS_REQUEST_METRICS", False),
        metrics_public=reader.bool("DBOPS_METRICS_PUBLIC", False),
        # Behind a reverse proxy on the same host every request comes from loopback: trusted only in development.
        metrics_allow_loopback=reader.bool("DBOPS_METRICS_ALLOW_LOOPBACK", not strict),
        prometheus_multiproc_dir=reader.str("PROMETHEUS_MULTIPROC_DIR", ""),
        backup_dir=reader.path("DATABASE_BACKUP_DIR", var_dir / "backups"),
        backup_s3=backup_s3,
        backup_keep_verified=reader.int("DATABASE_BACKUP_KEEP_VERIFIED", 3, minimum=1),
        backup_local_copy_days=_local_copy_days(reader, backup_s3),
        backup_max_verified_age_hours=reader.int("DATABASE_BACKUP_MAX_VERIFIED_AGE_HOURS", 48, unit=" hours"),
        backup_encryption_recipients=_encryption_recipients(reader),
        backup_encryption_identity_file=(
            reader.path("DATABASE_BACKUP_ENCRYPTION_IDENTITY_FILE", Path())
            if reader.raw("DATABASE_BACKUP_ENCRYPTION_IDENTITY_FILE")
            else None
        ),
        cache=parse_cache_url(reader.str("CACHE_URL", "locmem://")),
        alerts=_alerts(reader, environment=environment),
        pitr=_pitr(reader, var_dir, backup_s3),
        replica=replica,
        replica_max_lag_ms=reader.int("DATABASE_REPLICA_MAX_LAG_MS", 1000, unit=" ms"),
        pgbouncer_admin_url=_pgbouncer_admin_url(reader),
        patroni_urls=_patroni_urls(reader),
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
            exempt_paths=reader.list("DBOPS_BREAKER_EXEMPT_PATHS", ()),
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


def from_env(environ_mapping: Mapping[str, str] | None = None, *, base_dir: Path | str) -> DbopsConfig:
    """Validate dbops' environment variables (default: `os.environ`) into a `DbopsConfig`.

    `base_dir` is the site's BASE_DIR: backups, the project-local cluster and pgBackRest's repository default to
    folders under `base_dir/var`.
    """
    return _build(
        SettingsReader(os.environ if environ_mapping is None else environ_mapping), base_dir=base_dir, entries=None
    )


def configure(
    *,
    databases: Mapping[str, Mapping[str, Any]],
    base_dir: Path | str,
    environment: str = "development",
    settings: Mapping[str, Any] | None = None,
) -> DbopsConfig:
    """Validate a site's own `DATABASES` and a dict of dbops settings (same names as the variables).

    Values may be Python values (`True`, `20`, a `Path`, a list); nothing is read from the environment.
    """
    values = {**(settings or {}), "DJANGO_ENV": environment}
    return _build(SettingsReader(values), base_dir=base_dir, entries=databases)


def read_dotenv(path: Path | str) -> None:
    """Load a `.env` file into the environment when it exists; variables already set win (django-environ)."""
    if Path(path).is_file():
        environ.Env.read_env(str(path), overwrite=False)

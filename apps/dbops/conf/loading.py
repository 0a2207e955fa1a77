"""The two ways a site configures dbops, one validator behind both.

`from_env()` reads the process environment (django-environ); `configure()` takes a site's own `DATABASES` and a
plain dict whose keys are the same names. Every value is checked here once; a bad one raises
`ImproperlyConfigured` with one line that names it and the fix, and never contains a password.
"""

from __future__ import annotations

import ipaddress
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
    REPLICA_ALIAS,
    STRICT_ENVIRONMENTS,
    AlertConfig,
    BackupS3Config,
    BreakerConfig,
    DatabaseConfig,
    DbopsConfig,
    HealthConfig,
    InsightsConfig,
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
from dbops.conf.reader import SettingsReader, parse_cache_url
from dbops.conf.variables import VARIABLES


def _pool(reader: SettingsReader) -> PoolConfig:
    size = reader.get("DATABASE_POOL_SIZE")
    return PoolConfig(
        enabled=reader.get("DATABASE_POOL_ENABLED"),
        size=size,
        # A request thread holds at most one connection: by default the pool grows to the worker's threads.
        max_overflow=reader.get("DATABASE_POOL_MAX_OVERFLOW", default=max(0, reader.get("GUNICORN_THREADS") - size)),
        timeout=reader.get("DATABASE_POOL_TIMEOUT"),
        recycle=reader.get("DATABASE_POOL_RECYCLE"),
    )


def _database(reader: SettingsReader, entry: Mapping[str, Any], masked: str, is_postgresql: bool) -> DatabaseConfig:
    mode = reader.get("DATABASE_PGBOUNCER_MODE").lower()
    if mode not in ("", "session", "transaction", "statement"):
        raise ImproperlyConfigured(f"DATABASE_PGBOUNCER_MODE={mode!r} is not session, transaction or statement.")
    engine = reader.get("DATABASE_ENGINE", default=entry.get("ENGINE", ""))
    return DatabaseConfig(
        masked_url=masked,
        engine=DBOPS_POSTGRES_ENGINE if engine == DJANGO_POSTGRES_ENGINE else engine,
        pool=_pool(reader),
        query_timeout=reader.get("DATABASE_QUERY_TIMEOUT"),
        # libpq treats 1 as 2: the smallest useful connect timeout is 2 s.
        connect_timeout=reader.get("DATABASE_CONNECT_TIMEOUT"),
        application_name=reader.get("DATABASE_APPLICATION_NAME"),
        is_postgresql=is_postgresql,
        entry=dict(entry),
        pgbouncer_mode=mode,
        client_grace=reader.get("DATABASE_CLIENT_GRACE_SECONDS"),
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


def _signing_key(reader: SettingsReader) -> str:
    key = reader.raw("DATABASE_BACKUP_SIGNING_KEY") or ""
    if key and len(key) < 32:
        raise ImproperlyConfigured(
            f"DATABASE_BACKUP_SIGNING_KEY is {len(key)} characters: use at least 32 random ones "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    return key


def _health_token(reader: SettingsReader, *, environment: str) -> str:
    token = reader.raw("DBOPS_HEALTH_TOKEN") or ""
    if token and environment in STRICT_ENVIRONMENTS and (len(token) < 32 or len(set(token)) < 10):
        raise ImproperlyConfigured(
            f"DBOPS_HEALTH_TOKEN is {len(token)} characters, {len(set(token))} distinct, with "
            f"DJANGO_ENV={environment}: use 32 or more random ones (10 distinct at least: a repeated character "
            'is guessable) (python -c "import secrets; print(secrets.token_urlsafe(32))").'
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
    webhook_format = reader.get("DBOPS_ALERT_WEBHOOK_FORMAT").lower()
    if webhook_format not in ("json", "slack"):
        raise ImproperlyConfigured(f"DBOPS_ALERT_WEBHOOK_FORMAT={webhook_format!r} is not json or slack.")
    emails = reader.get("DBOPS_ALERT_EMAILS")
    for address in emails:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
            raise ImproperlyConfigured(f"DBOPS_ALERT_EMAILS: {address!r} is not an e-mail address.")
    return AlertConfig(
        cooldown_seconds=reader.get("DBOPS_ALERT_COOLDOWN_SECONDS"),
        pool_utilization_percent=reader.get("DBOPS_ALERT_POOL_UTILIZATION_PERCENT"),
        slow_queries_per_minute=reader.get("DBOPS_ALERT_SLOW_QUERIES_PER_MINUTE"),
        min_queries=reader.get("DBOPS_ALERT_MIN_QUERIES"),
        evaluate_interval=reader.get("DBOPS_ALERT_EVALUATE_INTERVAL"),
        emails=emails,
        webhook_url=webhook,
        webhook_format=webhook_format,
        webhook_timeout=reader.get("DBOPS_ALERT_WEBHOOK_TIMEOUT"),
        webhook_retries=reader.get("DBOPS_ALERT_WEBHOOK_RETRIES"),
        sample_retention_days=reader.get("DBOPS_ALERT_SAMPLE_RETENTION_DAYS"),
        events=reader.get("DBOPS_ALERT_EVENTS"),
    )


def _encryption_recipients(reader: SettingsReader) -> tuple[str, ...]:
    recipients = reader.get("DATABASE_BACKUP_ENCRYPTION_RECIPIENTS")
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
    bucket = reader.get("DATABASE_BACKUP_S3_BUCKET")
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
        prefix=reader.get("DATABASE_BACKUP_S3_PREFIX"),
        endpoint_url=endpoint,
        region=reader.get("DATABASE_BACKUP_S3_REGION"),
        access_key=access_key,
        secret_key=secret_key,
        ca_file=reader.get("DATABASE_BACKUP_S3_CA_FILE"),
        connect_timeout=reader.get("DATABASE_BACKUP_S3_CONNECT_TIMEOUT"),
        read_timeout=reader.get("DATABASE_BACKUP_S3_READ_TIMEOUT"),
    )


def _local_copy_days(reader: SettingsReader, backup_s3: BackupS3Config | None) -> int:
    days = reader.get("DATABASE_BACKUP_LOCAL_COPY_DAYS")
    if days and backup_s3 is None:
        raise ImproperlyConfigured(
            "DATABASE_BACKUP_LOCAL_COPY_DAYS keeps a local copy beside the bucket: set DATABASE_BACKUP_S3_BUCKET "
            "(without a bucket every backup is local already)."
        )
    return days


def _patroni_urls(reader: SettingsReader) -> tuple[str, ...]:
    urls = reader.get("DBOPS_PATRONI_URLS")
    for url in urls:
        if credentials_need_encoding(url) or url.partition("://")[0].lower() not in ("http", "https"):
            raise ImproperlyConfigured(
                f"DBOPS_PATRONI_URLS: {mask_url(url)!r} is not an http(s) URL of a Patroni REST API (http://HOST:8008)."
            )
    return tuple(url.rstrip("/") for url in urls)


def _pitr(reader: SettingsReader, var_dir: Path, backup_s3: BackupS3Config | None) -> PitrConfig:
    # Every PITR problem in one line: fixing them one run at a time is how operators gave up on set-up.
    problems = []
    engine = reader.get("DATABASE_PITR_ENGINE").lower()
    if engine not in ("none", "pgbackrest"):
        problems.append(f"DATABASE_PITR_ENGINE={engine!r} is not pgbackrest or none")
    pg_path = reader.raw("DATABASE_PITR_PG_PATH") or ""
    if engine == "pgbackrest" and not pg_path.startswith("/"):
        problems.append(
            "DATABASE_PITR_PG_PATH must be the server's data directory (an absolute path) with "
            "DATABASE_PITR_ENGINE=pgbackrest: pgBackRest runs on the database host"
        )
    stanza = reader.get("DATABASE_PITR_STANZA")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", stanza):
        problems.append(f"DATABASE_PITR_STANZA={stanza!r}: use letters, digits, '_', '.', '-'")
    repo_type = reader.get("DATABASE_PITR_REPO_TYPE").lower()
    if repo_type not in ("posix", "s3"):
        problems.append(f"DATABASE_PITR_REPO_TYPE={repo_type!r} is not posix or s3")
    elif repo_type == "s3" and backup_s3 is None:
        problems.append("DATABASE_PITR_REPO_TYPE=s3 keeps the repository in DATABASE_BACKUP_S3_BUCKET: set it")
    elif repo_type == "s3" and backup_s3 is not None and backup_s3.endpoint_url.lower().startswith("http://"):
        problems.append("DATABASE_PITR_REPO_TYPE=s3: pgBackRest speaks only https to a store, not http://")
    maintenance_user = reader.get("DATABASE_PITR_PG_USER")
    maintenance_password = reader.raw("DATABASE_PITR_PG_PASSWORD") or ""
    if maintenance_password and not maintenance_user:
        problems.append("DATABASE_PITR_PG_PASSWORD without DATABASE_PITR_PG_USER: name the maintenance user")
    if problems:
        raise ImproperlyConfigured("; ".join(problems) + ".")
    return PitrConfig(
        engine=engine,
        stanza=stanza,
        repo_path=reader.get("DATABASE_PITR_REPO_PATH", default=var_dir / "pgbackrest"),
        pg_path=pg_path,
        socket_path=reader.get("DATABASE_PITR_PG_SOCKET_PATH"),
        retention_full=reader.get("DATABASE_PITR_RETENTION_FULL"),
        run_as=reader.get("DATABASE_PITR_RUN_AS"),
        max_archive_age=reader.get("DATABASE_PITR_MAX_ARCHIVE_AGE_SECONDS"),
        maintenance_user=maintenance_user,
        maintenance_password=maintenance_password,
        repo_type=repo_type,
        repo_s3=backup_s3 if repo_type == "s3" else None,
        s3_verify_tls=reader.get("DATABASE_PITR_S3_VERIFY_TLS"),
        s3_ca_file=reader.get("DATABASE_PITR_S3_CA_FILE") or reader.get("DATABASE_BACKUP_S3_CA_FILE"),
        pg_database=reader.get("DATABASE_PITR_PG_DATABASE"),
    )


def _localdb(reader: SettingsReader, var_dir: Path) -> LocalDbConfig:
    data_dir = reader.get("DBOPS_LOCALDB_DIR", default=var_dir / "postgres")
    port = reader.get("DBOPS_LOCALDB_PORT")
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
    var_dir = reader.get("DBOPS_VAR_DIR", default=Path(base_dir) / "var")
    environment = reader.environment()
    strict = environment in STRICT_ENVIRONMENTS
    required_by = f"DJANGO_ENV={environment}" if strict else "ENFORCE_POSTGRESQL=true"

    enforce = reader.get("ENFORCE_POSTGRESQL")
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
        if url is None and not reader.get("DBOPS_LOCALDB"):
            # Never replace a site's database silently: the project-local cluster is an explicit choice.
            raise ImproperlyConfigured(
                "DATABASE_URL is not set: set it to postgres://USER:PASSWORD@HOST:PORT/NAME, or set "
                "DBOPS_LOCALDB=true to use dbops' project-local cluster (manage.py localdb start)."
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
        performance_threshold_ms=reader.get("DATABASE_PERFORMANCE_THRESHOLD_MS"),
        slow_query_threshold_ms=reader.get("DATABASE_SLOW_QUERY_THRESHOLD_MS"),
        health_check_interval=reader.get("DATABASE_HEALTH_CHECK_INTERVAL"),
        backup_enabled=reader.get("DATABASE_BACKUP_ENABLED"),
        backup_interval_hours=reader.get("DATABASE_BACKUP_INTERVAL_HOURS"),
        backup_retention_days=reader.get("DATABASE_BACKUP_RETENTION_DAYS"),
        health_token=_health_token(reader, environment=environment),
        web_workers=reader.get("WEB_CONCURRENCY"),
        web_threads=reader.get("GUNICORN_THREADS"),
        command_processes=reader.get("DBOPS_COMMAND_PROCESSES"),
        query_monitoring=reader.get("DBOPS_QUERY_MONITORING"),
        prometheus_request_metrics=reader.get("DBOPS_PROMETHEUS_REQUEST_METRICS"),
        metrics_public=reader.get("DBOPS_METRICS_PUBLIC"),
        # Behind a reverse proxy on the same host every request comes from loopback: trusted only in development.
        metrics_allow_loopback=reader.get("DBOPS_METRICS_ALLOW_LOOPBACK", default=not strict),
        prometheus_multiproc_dir=reader.get("PROMETHEUS_MULTIPROC_DIR"),
        backup_dir=reader.get("DATABASE_BACKUP_DIR", default=var_dir / "backups"),
        backup_s3=backup_s3,
        backup_keep_verified=reader.get("DATABASE_BACKUP_KEEP_VERIFIED"),
        backup_local_copy_days=_local_copy_days(reader, backup_s3),
        backup_max_verified_age_hours=reader.get("DATABASE_BACKUP_MAX_VERIFIED_AGE_HOURS"),
        backup_encryption_recipients=_encryption_recipients(reader),
        backup_signing_key=_signing_key(reader),
        backup_upload_deadline=reader.get("DATABASE_BACKUP_UPLOAD_DEADLINE"),
        trusted_proxy_count=reader.get("DBOPS_TRUSTED_PROXY_COUNT"),
        login_account_failure_limit=reader.get("DBOPS_LOGIN_ACCOUNT_FAILURE_LIMIT"),
        backup_encryption_identity_file=(
            reader.get("DATABASE_BACKUP_ENCRYPTION_IDENTITY_FILE", default=Path())
            if reader.raw("DATABASE_BACKUP_ENCRYPTION_IDENTITY_FILE")
            else None
        ),
        cache=parse_cache_url(reader.get("CACHE_URL")),
        alerts=_alerts(reader, environment=environment),
        pitr=_pitr(reader, var_dir, backup_s3),
        replica=replica,
        replica_max_lag_ms=reader.get("DATABASE_REPLICA_MAX_LAG_MS"),
        pgbouncer_admin_url=_pgbouncer_admin_url(reader),
        patroni_urls=_patroni_urls(reader),
        migrations=MigrationSafetyConfig(
            warn_rows=reader.get("MIGRATION_SAFETY_WARN_ROWS"),
            block_rows=reader.get("MIGRATION_SAFETY_BLOCK_ROWS"),
            warn_mb=reader.get("MIGRATION_SAFETY_WARN_MB"),
            block_mb=reader.get("MIGRATION_SAFETY_BLOCK_MB"),
            lock_timeout_ms=reader.get("MIGRATION_LOCK_TIMEOUT_MS"),
            statement_timeout=reader.get("MIGRATION_STATEMENT_TIMEOUT"),
            lock_retries=reader.get("MIGRATION_LOCK_RETRIES"),
            lock_retry_delay_ms=reader.get("MIGRATION_LOCK_RETRY_DELAY_MS"),
            backup=reader.get("MIGRATION_BACKUP"),
            suppressions=reader.get("MIGRATION_SAFETY_SUPPRESSIONS"),
        ),
        insights=InsightsConfig(
            **{
                name.removeprefix("DBOPS_INSIGHTS_").lower(): reader.get(name)
                for name in VARIABLES
                if name.startswith("DBOPS_INSIGHTS_")
            }
        ),
        breaker=BreakerConfig(
            enabled=reader.get("DBOPS_BREAKER_ENABLED"),
            failure_threshold=reader.get("DBOPS_BREAKER_FAILURE_THRESHOLD"),
            failure_window=reader.get("DBOPS_BREAKER_FAILURE_WINDOW"),
            probe_interval=reader.get("DBOPS_BREAKER_PROBE_INTERVAL"),
            reset_timeout=reader.get("DBOPS_BREAKER_RESET_TIMEOUT"),
            count_statement_timeouts=reader.get("DBOPS_BREAKER_COUNT_STATEMENT_TIMEOUTS"),
            exempt_paths=reader.get("DBOPS_BREAKER_EXEMPT_PATHS"),
            cache_alias=reader.get("DBOPS_BREAKER_CACHE_ALIAS"),
        ),
        health=HealthConfig(
            probe_timeout=reader.get("DBOPS_HEALTH_PROBE_TIMEOUT"),
            ready_cache_seconds=reader.get("DBOPS_HEALTH_READY_CACHE_SECONDS"),
            connections_warn_percent=reader.get("DBOPS_HEALTH_CONNECTIONS_WARN_PERCENT"),
            long_transaction_seconds=reader.get("DBOPS_HEALTH_LONG_TRANSACTION_SECONDS"),
            idle_in_transaction_seconds=reader.get("DBOPS_HEALTH_IDLE_IN_TRANSACTION_SECONDS"),
            lock_wait_seconds=reader.get("DBOPS_HEALTH_LOCK_WAIT_SECONDS"),
            replication_lag_seconds=reader.get("DBOPS_HEALTH_REPLICATION_LAG_SECONDS"),
            database_size_warn_mb=reader.get("DBOPS_HEALTH_DATABASE_SIZE_WARN_MB"),
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
    """Load a `.env` file into the environment when it exists; variables already set win (django-environ).

    When DBOPS_ENV_FILE names a file, it is read first the same way: cron and other schedulers point at the site's
    environment file instead of sourcing it with a shell (which expands `$` and `$(...)` inside secrets). Values
    are taken literally.
    """
    named = os.environ.get("DBOPS_ENV_FILE", "")
    if named:
        if not Path(named).is_file():
            raise ImproperlyConfigured(f"DBOPS_ENV_FILE={named!r} is not a readable file.")
        environ.Env.read_env(named, overwrite=False)
    if Path(path).is_file():
        environ.Env.read_env(str(path), overwrite=False)

"""System checks for what settings validation cannot see: the driver in use, worker shape, the live server."""

from __future__ import annotations

import ipaddress

import psycopg
from django.core.checks import CheckMessage, Error, Warning
from django.db import DatabaseError, connections

from dbops.conf import DbopsConfig, cache_is_shared, get_config
from dbops.conf.caches import cache_backend
from dbops.database.pool import connection_budget, pool_max_size, server_connection_limit
from dbops.replication.pgbouncer import session_statement_timeout

W001 = Warning(
    "psycopg is using its pure-Python implementation.",
    hint="Install the optimized driver: pip install 'psycopg[binary,pool]' (or psycopg[c]).",
    id="dbops.W001",
)
E000 = Error(
    "settings.DBOPS is not a dbops configuration, so dbops can neither check nor protect this site.",
    hint="Add DBOPS = dbops.conf.from_env(base_dir=BASE_DIR) (or dbops.conf.configure(...)) to the settings "
    "and apply DBOPS.databases() and DBOPS.middleware(): see docs/adopting.md.",
    id="dbops.E000",
)
W002_ID = "dbops.W002"
W003 = Warning(
    "/metrics answers nobody: staging/production require the bearer token there, and DBOPS_HEALTH_TOKEN is unset.",
    hint="Set DBOPS_HEALTH_TOKEN and give it to Prometheus (authorization: credentials), or set "
    "DBOPS_METRICS_PUBLIC=true if the endpoint is firewalled.",
    id="dbops.W003",
)
W004 = Warning(
    "/metrics trusts every request from this host (DBOPS_METRICS_ALLOW_LOOPBACK=true): behind a reverse proxy on "
    "the same host that is every request, and each anonymous scrape also runs database probes.",
    hint="Scrape with the token instead and remove DBOPS_METRICS_ALLOW_LOOPBACK.",
    id="dbops.W004",
)
W012 = Warning(
    "/metrics is public (DBOPS_METRICS_PUBLIC=true): anyone who reaches it reads the pool, query latencies, backup "
    "and replica state, and each anonymous scrape runs database probes.",
    hint="Give Prometheus DBOPS_HEALTH_TOKEN and remove DBOPS_METRICS_PUBLIC, unless a firewall admits only it.",
    id="dbops.W012",
)
W006_ID = "dbops.W006"
W007_ID = "dbops.W007"
W008_ID = "dbops.W008"
W009_ID = "dbops.W009"
W010_ID = "dbops.W010"
W011_ID = "dbops.W011"
E001_ID = "dbops.E001"
E002_ID = "dbops.E002"
E003_ID = "dbops.E003"
E004_ID = "dbops.E004"
E005_ID = "dbops.E005"


def config_is_present() -> bool:
    """Tell whether settings.DBOPS holds a configuration built by dbops.conf."""
    from django.conf import settings

    return isinstance(getattr(settings, "DBOPS", None), DbopsConfig)


def check_config_present(app_configs=None, **kwargs):
    return [] if config_is_present() else [E000]


def check_metrics_access(app_configs=None, **kwargs):
    """Staging/production: say when /metrics is closed to everyone, or open to everything behind a local proxy."""
    config = get_config()
    if not config.is_strict:
        return []
    if config.metrics_public:
        return [W012]
    if config.metrics_allow_loopback:
        return [W004]
    return [] if config.health_token else [W003]


def check_statement_timeout_behind_pgbouncer(app_configs=None, databases=None, **kwargs):
    """Behind PgBouncer in transaction mode the startup statement_timeout is not sent: the role must carry one."""
    mode = get_config().database.pgbouncer_mode if get_config().database else ""
    if databases is None or mode not in ("transaction", "statement"):
        return []
    warnings = []
    for alias in databases:
        try:
            role, value = session_statement_timeout(alias, timeout=float(get_config().health.probe_timeout))
        except (DatabaseError, psycopg.Error):
            continue  # an unreachable server is dbops.E002's and the health checks' to report
        if value in ("0", ""):
            seconds = get_config().database.query_timeout
            warnings.append(
                Warning(
                    f"Database {alias!r} behind PgBouncer in {mode} mode: role {role!r} has no statement_timeout, "
                    "and PgBouncer does not pass the one in the connection options: a runaway query holds a "
                    "server connection (and its locks) for ever.",
                    hint=f"As a superuser: ALTER ROLE \"{role}\" SET statement_timeout = '{seconds}s';",
                    id=W007_ID,
                )
            )
    return warnings


def check_pool_timeout_above_connect_timeout(app_configs=None, **kwargs):
    """Several hosts in the URL: a new connection may spend connect_timeout on a frozen first host before the next.

    With the pool's timeout not above it, every request that needs a new connection fails first.
    """
    config = get_config()
    warnings = []
    for alias, database in (("default", config.database), ("replica", config.replica)):
        if database is None or not database.pool.enabled or "," not in str(database.entry.get("HOST") or ""):
            continue
        if database.pool.timeout <= database.connect_timeout:
            warnings.append(
                Warning(
                    f"Database {alias!r} lists several hosts, and DATABASE_POOL_TIMEOUT ({database.pool.timeout} s) "
                    f"is not above DATABASE_CONNECT_TIMEOUT ({database.connect_timeout} s): while the first host "
                    "hangs (frozen, not down), no new connection reaches the next host before requests give up.",
                    hint=f"Set DATABASE_POOL_TIMEOUT to at least {2 * database.connect_timeout + 1} "
                    "(docs/high-availability.md).",
                    id=W008_ID,
                )
            )
    return warnings


def check_shared_cache(app_configs=None, **kwargs):
    """Staging/production: the breaker, the dashboard and the alert evaluator need a cache every process shares."""
    config = get_config()
    alias = config.breaker.cache_alias
    if not config.is_strict or cache_is_shared(alias):
        return []
    return [
        Warning(
            f"Cache {alias!r} ({cache_backend(alias) or 'not configured'}) lives in each process: workers do not "
            "share the breaker's state, `breaker reset` reaches none of them, and the alert evaluator and the "
            "dashboard's chart see no web process (no latency or pool alert can fire).",
            hint="Set CACHE_URL=redis://HOST:6379/0 (or point DBOPS_BREAKER_CACHE_ALIAS at a shared cache).",
            id=W006_ID,
        )
    ]


TLS_SSLMODES = ("require", "verify-ca", "verify-full")
W005_ID = "dbops.W005"


def _is_local_host(host: str) -> bool:
    if not host or host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_database_tls(app_configs=None, **kwargs):
    """Staging/production: a database reached over the network should require TLS (sslmode=require or verify-*)."""
    if not get_config().is_strict:
        return []
    warnings = []
    for alias in connections:
        settings_dict = connections[alias].settings_dict
        hosts = [h for h in str(settings_dict.get("HOST") or "").split(",")]
        sslmode = (settings_dict.get("OPTIONS") or {}).get("sslmode", "prefer")
        if sslmode not in TLS_SSLMODES and not all(_is_local_host(h) for h in hosts):
            warnings.append(
                Warning(
                    f"Database {alias!r} is reached over the network with sslmode={sslmode!r}: the password and "
                    "every query can travel in clear text.",
                    hint="Add ?sslmode=verify-full (or require) to DATABASE_URL.",
                    id=W005_ID,
                )
            )
    return warnings


def check_psycopg_implementation(app_configs=None, **kwargs):
    import psycopg

    return [W001] if psycopg.pq.__impl__ == "python" else []


def check_engine_outside_strict_environments(app_configs=None, **kwargs):
    """Development and test may run on another engine, but say that production will refuse it."""
    config = get_config()
    if config.enforcement_applies or config.database.is_postgresql:
        return []
    return [
        Warning(
            f"DATABASE_URL uses {config.database.engine!r}; DJANGO_ENV=staging/production will refuse it.",
            hint="Use PostgreSQL locally too: unset DATABASE_URL to get the project-local cluster.",
            id=W002_ID,
        )
    ]


def check_pool_covers_threads(app_configs=None, **kwargs):
    """Flag a pool smaller than a worker's threads: requests would queue for connections."""
    errors = []
    threads = get_config().web_threads
    for alias in connections:
        max_size = pool_max_size(alias)
        if max_size is not None and max_size < threads:
            errors.append(
                Error(
                    f"Database {alias!r}: pool max size {max_size} is below GUNICORN_THREADS={threads}.",
                    hint="Raise DATABASE_POOL_SIZE + DATABASE_POOL_MAX_OVERFLOW to at least the threads per worker.",
                    id=E001_ID,
                )
            )
    return errors


def check_pool_fits_server(app_configs=None, databases=None, **kwargs):
    """Pool max size x workers must fit in the server's max_connections (minus reserved slots)."""
    if databases is None:
        return []
    return _connection_budget_errors(databases, unreachable_warning=False)


def check_pool_fits_server_on_deploy(app_configs=None, databases=None, **kwargs):
    """Check the same budget in `check --deploy`, which runs no check tagged database: connect directly.

    With `--database` the database-tagged check above runs instead. An unreachable server is a warning here:
    the deploy check cannot vouch for the budget, and says so.
    """
    if databases is not None:
        return []
    return _connection_budget_errors(["default"], unreachable_warning=True)


def _connection_budget_errors(databases, *, unreachable_warning: bool) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    config = get_config()
    for alias in databases:
        budget = connection_budget(alias, web_workers=config.web_workers, command_processes=config.command_processes)
        if budget is None:
            continue
        try:
            available = server_connection_limit(alias, timeout=float(config.health.probe_timeout))
        except (DatabaseError, psycopg.Error) as exc:
            if unreachable_warning:
                errors.append(
                    Warning(
                        f"Database {alias!r}: the server could not be reached ({type(exc).__name__}), so the "
                        f"connection budget ({budget['needed']} connections) was not checked against it.",
                        hint="Run `manage.py check --deploy` where the database answers.",
                        id=W010_ID,
                    )
                )
            continue  # Unreachable: the health checks report that; this check is about sizing.
        if budget["needed"] > available:
            errors.append(
                Error(
                    f"Database {alias!r}: pool max size {budget['pool_max']} x WEB_CONCURRENCY={config.web_workers} "
                    f"workers + {budget['probes']} probe(s) + {budget['commands']} for "
                    f"DBOPS_COMMAND_PROCESSES={config.command_processes} = "
                    f"{budget['needed']} connections, but the server allows {available}.",
                    hint="Lower DATABASE_POOL_SIZE/DATABASE_POOL_MAX_OVERFLOW or WEB_CONCURRENCY, "
                    "or raise max_connections on the server.",
                    id=E002_ID,
                )
            )
    return errors


def check_pgbouncer_compatibility(app_configs=None, **kwargs):
    """Behind PgBouncer in transaction mode: no server-side cursors, prepared statements or startup options."""
    mode = get_config().database.pgbouncer_mode if get_config().database else ""
    if mode not in ("transaction", "statement"):
        return []
    errors = []
    for alias in connections:
        database = connections[alias].settings_dict
        options = database.get("OPTIONS") or {}
        where = f"Database {alias!r} behind PgBouncer in {mode} mode"
        if not database.get("DISABLE_SERVER_SIDE_CURSORS"):
            errors.append(
                Error(
                    f"{where} uses server-side cursors: .iterator() fails once its transaction's server "
                    "connection is handed to another client.",
                    hint="Set DISABLE_SERVER_SIDE_CURSORS = True (dbops does unless settings override it).",
                    id=E003_ID,
                )
            )
        if options.get("prepare_threshold", 5) is not None:
            errors.append(
                Error(
                    f"{where} lets psycopg prepare statements: the next transaction may run on a server "
                    "connection that does not have them ('prepared statement ... does not exist').",
                    hint='Set OPTIONS["prepare_threshold"] = None (dbops does unless settings override it).',
                    id=E004_ID,
                )
            )
        if "options" in options:
            errors.append(
                Error(
                    f"{where} sends startup options ({options['options']!r}): PgBouncer refuses unknown startup "
                    "parameters, and a session setting would leak to other clients anyway.",
                    hint="Remove OPTIONS['options']; set statement_timeout on the role "
                    "(ALTER ROLE app SET statement_timeout = '30s') or PgBouncer's query_timeout.",
                    id=E005_ID,
                )
            )
    return errors


def check_probes_not_redirected(app_configs=None, **kwargs):
    """With SECURE_SSL_REDIRECT, probes and /metrics must still answer plain http (a 3xx counts as healthy)."""
    from dbops.health.probes import redirected_probe_paths

    return [
        Warning(
            f"{path} would be redirected to https by SECURE_SSL_REDIRECT: a load balancer or Kubernetes probing it "
            "over plain http counts the redirect as healthy, whatever the database says.",
            hint="Add a pattern matching it to SECURE_REDIRECT_EXEMPT (dbops adds its own when the setting is on "
            "at start-up).",
            id=W009_ID,
        )
        for path in redirected_probe_paths()
    ]


def check_backups_signed(app_configs=None, **kwargs):
    """Deploy: backups without DATABASE_BACKUP_SIGNING_KEY can be forged (age authenticates no sender)."""
    config = get_config()
    if not config.is_strict or not config.backup_enabled or config.backup_signing_key:
        return []
    return [
        Warning(
            "Backups are not signed: anyone with the public age recipient can make a valid encrypted dump, and anyone "
            "who can edit rows can make a backup record describe it; verify and restore cannot tell.",
            hint="Set DATABASE_BACKUP_SIGNING_KEY to 32+ random characters, kept out of the database and the bucket "
            "(docs/recovery.md, signed backups).",
            id=W011_ID,
        )
    ]

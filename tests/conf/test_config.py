"""Settings validation: pure, no database. Every bad value is one named line without the password."""

from __future__ import annotations

import traceback

import pytest
from django.core.exceptions import ImproperlyConfigured

from dbops.conf import INSECURE_SECRET_KEY, configure, from_env, mask_url, site_from_env
from tests import PROJECT_DIR
from tests.conftest import SECRET_PASSWORD

pytestmark = pytest.mark.pure

PG_URL = f"postgres://app:{SECRET_PASSWORD}@db.internal:5432/app"
STRICT_OK = {"SECRET_KEY": "a-real-secret-" * 4, "ALLOWED_HOSTS": "example.com", "DATABASE_URL": PG_URL}


def load_config(environ: dict[str, str]):
    """Run both validators the reference project's settings run, in its order; return dbops' config."""
    config = from_env({"DBOPS_LOCALDB": "true", **environ}, base_dir=PROJECT_DIR)
    site_config(environ)
    return config


def site_config(environ: dict[str, str]):
    return site_from_env(environ, base_dir=PROJECT_DIR, root_urlconf="project.urls")


def config_error(environ: dict[str, str]) -> str:
    with pytest.raises(ImproperlyConfigured) as info:
        load_config(environ)
    text = "".join(traceback.format_exception(info.value))
    assert SECRET_PASSWORD not in text
    message = str(info.value)
    assert "\n" not in message
    return message


def test_load_config__default_pool_is_sized_from_the_workers_threads():
    config = load_config({"DJANGO_ENV": "production", **STRICT_OK})
    database = config.database.django_settings()

    assert database["ENGINE"] == "dbops.database.postgresql"
    assert database["CONN_MAX_AGE"] == 0
    assert database["OPTIONS"]["pool"] == {
        "name": "dbops-default",
        "min_size": 2,  # a small minimum: idle server connections cost the site its connection budget
        "max_size": 4,  # GUNICORN_THREADS (4): a request thread holds at most one connection
        "timeout": 5.0,
        "max_lifetime": 3600.0,
    }
    assert database["OPTIONS"]["options"] == "-c statement_timeout=30000"
    assert database["OPTIONS"]["connect_timeout"] == 3
    assert database["OPTIONS"]["application_name"] == "dbops"
    assert (config.performance_threshold_ms, config.slow_query_threshold_ms) == (100, 200)
    assert (config.health_check_interval, config.backup_enabled) == (30, True)
    assert (config.backup_interval_hours, config.backup_retention_days) == (6, 30)
    assert site_config({"DJANGO_ENV": "production", **STRICT_OK}).debug is False


def test_load_config__variables_override_the_defaults():
    config = load_config(
        {
            "DJANGO_ENV": "staging",
            **STRICT_OK,
            "DATABASE_POOL_SIZE": "8",
            "DATABASE_POOL_MAX_OVERFLOW": "0",
            "DATABASE_POOL_TIMEOUT": "2",
            "DATABASE_POOL_RECYCLE": "600",
            "DATABASE_QUERY_TIMEOUT": "7",
            "DATABASE_CONNECT_TIMEOUT": "4",
            "DATABASE_PERFORMANCE_THRESHOLD_MS": "50",
            "DATABASE_SLOW_QUERY_THRESHOLD_MS": "150",
            "DATABASE_BACKUP_ENABLED": "false",
        }
    )
    options = config.database.django_settings()["OPTIONS"]
    assert (options["pool"]["min_size"], options["pool"]["max_size"]) == (8, 8)
    assert (options["pool"]["timeout"], options["pool"]["max_lifetime"]) == (2.0, 600.0)
    assert options["options"] == "-c statement_timeout=7000"
    assert options["connect_timeout"] == 4
    assert (config.performance_threshold_ms, config.slow_query_threshold_ms) == (50, 150)
    assert config.backup_enabled is False


def test_load_config__url_query_options_are_kept():
    url = PG_URL + "?sslmode=require&options=-c%20search_path%3Dapp"
    options = load_config({"DJANGO_ENV": "production", **STRICT_OK, "DATABASE_URL": url}).database.django_settings()[
        "OPTIONS"
    ]
    assert options["sslmode"] == "require"
    assert options["options"] == "-c search_path=app -c statement_timeout=30000"


ENGINES = {
    "postgresql": (PG_URL, {}),
    "prometheus-wrapper": (PG_URL, {"DATABASE_ENGINE": "django_prometheus.db.backends.postgresql"}),
    "sqlite": ("sqlite:////tmp/dbops.sqlite3", {}),
    "mysql": (f"mysql://app:{SECRET_PASSWORD}@db/app", {}),
}
POSTGRES_ENGINES = {"postgresql", "prometheus-wrapper"}


@pytest.mark.parametrize("environment", ["development", "test", "staging", "production", "prod"])
@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("enforce_locally", [False, True])
def test_load_config__enforcement_matrix(environment, engine, pool, enforce_locally):
    url, extra = ENGINES[engine]
    environ = {"DJANGO_ENV": environment, **STRICT_OK, "DATABASE_URL": url, **extra}
    environ["DATABASE_POOL_ENABLED"] = "true" if pool else "false"
    if enforce_locally:
        environ["ENFORCE_POSTGRESQL"] = "true"
    strict = environment in ("staging", "production", "prod")

    if (strict or enforce_locally) and not (engine in POSTGRES_ENGINES and pool):
        message = config_error(environ)
        assert "requires PostgreSQL" in message
        assert ("DATABASE_POOL_ENABLED" if engine in POSTGRES_ENGINES else "DATABASE_URL") in message
    else:
        config = load_config(environ)
        assert config.enforcement_applies == (strict or enforce_locally)
        has_pool = "pool" in config.database.django_settings()["OPTIONS"]
        assert has_pool == (engine in POSTGRES_ENGINES and pool)


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_load_config__enforce_postgresql_false_is_refused_in_strict_environments(environment):
    message = config_error({"DJANGO_ENV": environment, **STRICT_OK, "ENFORCE_POSTGRESQL": "false"})
    assert message.startswith("ENFORCE_POSTGRESQL=false is not allowed")


def test_load_config__enforce_postgresql_false_relaxes_development():
    config = load_config({"DJANGO_ENV": "development", "ENFORCE_POSTGRESQL": "false", "DATABASE_URL": "sqlite://"})
    assert config.enforcement_applies is False


BAD_VALUES = [
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
    ({"DATABASE_URL": f"foo://app:{SECRET_PASSWORD}@db/app"}, "DATABASE_URL"),
    ({"DATABASE_URL": f"postgres://app:{SECRET_PASSWORD}@db:port/app"}, "DATABASE_URL"),
    ({"DATABASE_URL": f"postgres://app:{SECRET_PASSWORD}@db:99999/app"}, "DATABASE_URL"),
    ({"DATABASE_URL": f"postgres://app:{SECRET_PASSWORD}@db/app?pool=true"}, "DATABASE_URL"),
    ({"DATABASE_URL": f"postgres://app:{SECRET_PASSWORD}@db"}, "DATABASE_URL"),
    ({"DATABASE_URL": f"sqlite:///{SECRET_PASSWORD}.db"}, "DATABASE_URL"),
    ({"DATABASE_URL": ""}, "DATABASE_URL"),
    ({"DATABASE_POOL_SIZE": "abc"}, "DATABASE_POOL_SIZE"),
    ({"DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE"),
    ({"DATABASE_POOL_SIZE": "-3"}, "DATABASE_POOL_SIZE"),
    ({"DATABASE_POOL_SIZE": "2.5"}, "DATABASE_POOL_SIZE"),
    ({"DATABASE_POOL_MAX_OVERFLOW": "-1"}, "DATABASE_POOL_MAX_OVERFLOW"),
    ({"DATABASE_POOL_TIMEOUT": "0"}, "DATABASE_POOL_TIMEOUT"),
    ({"DATABASE_POOL_TIMEOUT": "five"}, "DATABASE_POOL_TIMEOUT"),
    ({"DATABASE_POOL_RECYCLE": "-10"}, "DATABASE_POOL_RECYCLE"),
    ({"DATABASE_QUERY_TIMEOUT": "0"}, "DATABASE_QUERY_TIMEOUT"),
    ({"DATABASE_CONNECT_TIMEOUT": "1"}, "DATABASE_CONNECT_TIMEOUT"),
    ({"DATABASE_PERFORMANCE_THRESHOLD_MS": "fast"}, "DATABASE_PERFORMANCE_THRESHOLD_MS"),
    ({"DATABASE_SLOW_QUERY_THRESHOLD_MS": "-200"}, "DATABASE_SLOW_QUERY_THRESHOLD_MS"),
    ({"DATABASE_HEALTH_CHECK_INTERVAL": "0"}, "DATABASE_HEALTH_CHECK_INTERVAL"),
    ({"DATABASE_BACKUP_INTERVAL_HOURS": "x"}, "DATABASE_BACKUP_INTERVAL_HOURS"),
    ({"DATABASE_BACKUP_RETENTION_DAYS": "0"}, "DATABASE_BACKUP_RETENTION_DAYS"),
    ({"DATABASE_BACKUP_ENABLED": "maybe"}, "DATABASE_BACKUP_ENABLED"),
    ({"ENFORCE_POSTGRESQL": "sometimes"}, "ENFORCE_POSTGRESQL"),
    ({"DJANGO_ENV": "moon"}, "DJANGO_ENV"),
    ({"DEBUG": "true"}, "DEBUG"),
    ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ({"SECRET_KEY": INSECURE_SECRET_KEY}, "SECRET_KEY"),
    ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
    ({"MIGRATION_LOCK_TIMEOUT_MS": "0"}, "MIGRATION_LOCK_TIMEOUT_MS"),
    ({"DBOPS_ALERT_WEBHOOK_URL": f"ftp://hook:{SECRET_PASSWORD}@example.com/x"}, "DBOPS_ALERT_WEBHOOK_URL"),
    ({"DBOPS_ALERT_WEBHOOK_FORMAT": "xml"}, "DBOPS_ALERT_WEBHOOK_FORMAT"),
    ({"DATABASE_PITR_ENGINE": "barman"}, "DATABASE_PITR_ENGINE"),
    ({"DATABASE_REPLICA_URL": f"sqlite:///{SECRET_PASSWORD}.db"}, "DATABASE_REPLICA_URL"),
    ({"DATABASE_PGBOUNCER_MODE": "pool"}, "DATABASE_PGBOUNCER_MODE"),
    ({"DATABASE_URL": f"postgres://app:{SECRET_PASSWORD}@h1:5432,h2:5432,h3:1,/app"}, "DATABASE_URL"),
    ({"DATABASE_URL": f"postgres://app:{SECRET_PASSWORD}@h1:1,h2:2,h3:3:4/app"}, "DATABASE_URL"),
    ({"DATABASE_URL": f"postgres://app:{SECRET_PASSWORD}@h1,h2/app?target_session_attrs=master"}, "DATABASE_URL"),
    ({"DATABASE_PITR_ENGINE": "pgbackrest"}, "DATABASE_PITR_PG_PATH"),
    ({"DATABASE_PITR_STANZA": "my stanza"}, "DATABASE_PITR_STANZA"),
    ({"DATABASE_PITR_REPO_TYPE": "gcs"}, "DATABASE_PITR_REPO_TYPE"),
    ({"DATABASE_BACKUP_LOCAL_COPY_DAYS": "2"}, "DATABASE_BACKUP_LOCAL_COPY_DAYS keeps a local copy beside the bucket"),
    ({"DATABASE_BACKUP_MAX_VERIFIED_AGE_HOURS": "0"}, "DATABASE_BACKUP_MAX_VERIFIED_AGE_HOURS"),
    ({"DATABASE_PITR_REPO_TYPE": "s3"}, "DATABASE_PITR_REPO_TYPE=s3 keeps the repository in DATABASE_BACKUP_S3"),
    (
        {
            "DATABASE_PITR_REPO_TYPE": "s3",
            "DATABASE_BACKUP_S3_BUCKET": "b",
            "DATABASE_BACKUP_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        },
        "DATABASE_PITR_REPO_TYPE=s3: pgBackRest speaks only https",
    ),
    ({"DATABASE_PITR_PG_PASSWORD": SECRET_PASSWORD}, "DATABASE_PITR_PG_PASSWORD without DATABASE_PITR_PG_USER"),
    ({"DBOPS_ALERT_EMAILS": "oncall@example.com,not-an-address"}, "DBOPS_ALERT_EMAILS"),
    ({"DBOPS_ALERT_COOLDOWN_SECONDS": "-1"}, "DBOPS_ALERT_COOLDOWN_SECONDS"),
    ({"EMAIL_URL": f"bogus://user:{SECRET_PASSWORD}@mail"}, "EMAIL_URL"),
    ({"MIGRATION_SAFETY_BLOCK_ROWS": "many"}, "MIGRATION_SAFETY_BLOCK_ROWS"),
    ({"MIGRATION_SAFETY_SUPPRESSIONS": "{not json"}, "MIGRATION_SAFETY_SUPPRESSIONS"),
    ({"MIGRATION_SAFETY_SUPPRESSIONS": '["M005"]'}, "MIGRATION_SAFETY_SUPPRESSIONS"),
    ({"MIGRATION_SAFETY_SUPPRESSIONS": '{"no_dot": {"M005": "why"}}'}, "MIGRATION_SAFETY_SUPPRESSIONS"),
    ({"MIGRATION_SAFETY_SUPPRESSIONS": '{"shop.0007": {"M005": " "}}'}, "MIGRATION_SAFETY_SUPPRESSIONS"),
]


@pytest.mark.parametrize(("override", "variable"), BAD_VALUES, ids=[f"{v}-{i}" for i, (_, v) in enumerate(BAD_VALUES)])
def test_load_config__bad_value_names_its_variable_without_the_password(override, variable):
    environ = {"DJANGO_ENV": "production", **STRICT_OK, **override}
    environ = {k: v for k, v in environ.items() if not (k == "DATABASE_URL" and v == "")}
    message = config_error(environ)
    assert message.startswith(variable), message


def test_load_config__migration_safety_settings():
    config = load_config(
        {
            "MIGRATION_SAFETY_WARN_ROWS": "50",
            "MIGRATION_LOCK_TIMEOUT_MS": "750",
            "MIGRATION_LOCK_RETRIES": "0",
            "MIGRATION_SAFETY_SUPPRESSIONS": '{"shop.0007_index": {"M005": " built off-hours "}}',
        }
    ).migrations
    assert (config.warn_rows, config.block_rows, config.lock_timeout_ms, config.lock_retries) == (50, 1_000_000, 750, 0)
    assert config.suppressions == {"shop.0007_index": {"M005": "built off-hours"}}


def test_load_config__alert_channels():
    environ = {
        "DBOPS_ALERT_EMAILS": "oncall@example.com, dba@example.com",
        "DBOPS_ALERT_WEBHOOK_URL": "https://hooks.example.com/T0/B0/xyz",
        "DBOPS_ALERT_WEBHOOK_FORMAT": "slack",
        "EMAIL_URL": f"smtp://alerts:{SECRET_PASSWORD}@mail.example.com:587",
    }
    config, site = load_config(environ), site_config(environ)
    assert config.alerts.emails == ("oncall@example.com", "dba@example.com")
    assert (config.alerts.webhook_format, site.email["EMAIL_HOST"], site.email["EMAIL_PORT"]) == (
        "slack",
        "mail.example.com",
        587,
    )
    for text in (repr(config), repr(site)):
        assert SECRET_PASSWORD not in text and "hooks.example.com" not in text


def test_load_config__multi_host_url_and_replica():
    config = load_config(
        {
            **STRICT_OK,
            "DJANGO_ENV": "production",
            "DATABASE_URL": f"postgres://app:{SECRET_PASSWORD}@db1:5432,db2:5433/app?target_session_attrs=read-write",
            "DATABASE_REPLICA_URL": f"postgres://app:{SECRET_PASSWORD}@db2:5433/app",
        }
    )
    primary = config.database.django_settings()
    assert (primary["HOST"], primary["PORT"], primary["OPTIONS"]["target_session_attrs"]) == (
        "db1,db2",
        "5432,5433",
        "read-write",
    )
    assert config.replica.django_settings("replica")["OPTIONS"]["pool"]["name"] == "dbops-replica"
    assert config.database.masked_url == "postgres://app:***@db1:5432,db2:5433/app?target_session_attrs=read-write"
    assert SECRET_PASSWORD not in repr(config)


def test_load_config__missing_database_url_in_production():
    environ = {k: v for k, v in STRICT_OK.items() if k != "DATABASE_URL"}
    assert config_error({"DJANGO_ENV": "production", **environ}).startswith("DATABASE_URL is not set")


def test_load_config__development_defaults_to_the_project_local_cluster():
    config = load_config({"DJANGO_ENV": "development", "DBOPS_LOCALDB_PORT": "54400"})
    database = config.database.django_settings()
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("127.0.0.1", 54400, "dbops")
    assert config.database_url_from_env is False
    assert site_config({"DJANGO_ENV": "development"}).debug is True


def test_config_repr__holds_no_secret():
    config = load_config({"DJANGO_ENV": "production", **STRICT_OK, "DBOPS_HEALTH_TOKEN": "tok-" * 8 + SECRET_PASSWORD})
    assert SECRET_PASSWORD not in repr(config)
    assert STRICT_OK["SECRET_KEY"] not in repr(site_config({"DJANGO_ENV": "production", **STRICT_OK}))
    assert config.database.masked_url == "postgres://app:***@db.internal:5432/app"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
        ("postgres://u:p%40ss:w@h:5432/db", "postgres://u:***@h:5432/db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        ("postgres://h/db?password=pw&sslmode=require", "postgres://h/db?password=***&sslmode=require"),
        ("postgresql://u:pw@h1:5432,h2:5432/db", "postgresql://u:***@h1:5432,h2:5432/db"),
        ("garbage://u:pw@", "garbage://u:***@"),
    ],
)
def test_mask_url__hides_the_password(url, masked):
    assert mask_url(url) == masked


SITE_DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "shop",
        "PASSWORD": SECRET_PASSWORD,
        "HOST": "db.internal",
        "PORT": 5432,
        "OPTIONS": {"sslmode": "require"},
    },
    "analytics": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/analytics.sqlite3"},
}


def test_configure__python_settings_give_the_same_pool_and_pass_other_aliases_through(tmp_path):
    config = configure(
        databases=SITE_DATABASES,
        base_dir=tmp_path,
        environment="production",
        settings={"DATABASE_POOL_SIZE": 8, "DBOPS_BREAKER_ENABLED": False, "DATABASE_BACKUP_DIR": tmp_path / "dumps"},
    )
    databases = config.databases()

    assert databases["default"]["OPTIONS"]["pool"]["min_size"] == 8
    assert databases["default"]["OPTIONS"]["sslmode"] == "require"
    assert databases["default"]["CONN_MAX_AGE"] == 0
    assert databases["analytics"] == SITE_DATABASES["analytics"]
    assert config.middleware() == ["dbops.monitoring.middleware.QueryMonitoringMiddleware"]
    assert (config.backup_dir, config.localdb.data_dir) == (tmp_path / "dumps", tmp_path / "var" / "postgres")
    assert config.database.masked_url == "postgresql://shop:***@db.internal:5432/shop"
    assert SECRET_PASSWORD not in repr(config)


@pytest.mark.parametrize(
    ("databases", "options", "expected"),
    [
        ({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}}, {}, "DATABASES['default'] uses engine"),
        (
            {"default": {**SITE_DATABASES["default"], "OPTIONS": {"pool": {"min_size": 2}}}},
            {},
            "DATABASES['default']['OPTIONS']['pool'] is set",
        ),
        (SITE_DATABASES, {"DATABASE_URL": f"postgres://u:{SECRET_PASSWORD}@h/d"}, "DATABASE_URL is given"),
        (SITE_DATABASES, {"DATABASE_POOL_SIZE": -1}, "DATABASE_POOL_SIZE=-1 is negative"),
        ({"other": SITE_DATABASES["default"]}, {}, "DATABASES has no 'default'"),
    ],
)
def test_configure__enforces_at_settings_load_in_one_line(tmp_path, databases, options, expected):
    with pytest.raises(ImproperlyConfigured) as info:
        configure(databases=databases, base_dir=tmp_path, environment="production", settings=options)
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message and SECRET_PASSWORD not in "".join(traceback.format_exception(info.value))


def test_configure__development_allows_another_engine(tmp_path):
    config = configure(databases={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}}, base_dir=tmp_path)
    assert (config.enforcement_applies, config.database.is_postgresql) == (False, False)
    assert "pool" not in config.databases()["default"]["OPTIONS"]


def test_get_config__without_dbops_settings_says_what_to_add(settings):
    from dbops.checks import E000, check_config_present
    from dbops.conf import get_config

    del settings.DBOPS
    with pytest.raises(ImproperlyConfigured, match=r"add DBOPS = dbops.conf.from_env"):
        get_config()
    assert check_config_present() == [E000]


URL_VARIABLES = {
    "DATABASE_URL": "postgres://app:{password}@db.internal:5432/app",
    "DATABASE_REPLICA_URL": "postgres://app:{password}@replica.internal:5432/app",
    "DATABASE_PGBOUNCER_ADMIN_URL": "postgres://pgbouncer:{password}@127.0.0.1:6432/pgbouncer",
    "CACHE_URL": "redis://:{password}@cache.internal:6379/0",
    "EMAIL_URL": "smtp://alerts:{password}@mail.internal:587",
    "DBOPS_ALERT_WEBHOOK_URL": "https://hook:{password}@hooks.internal/T0",
}


@pytest.mark.parametrize("char", ["/", "@", ":", "%", "#", "?"])
@pytest.mark.parametrize("variable", sorted(URL_VARIABLES))
def test_url_variables__a_password_never_shows_whatever_characters_it_holds(variable, char):
    head, tail = "S3cretHead", "Tail9pw"  # each half must stay hidden too, wherever a parser cuts the password
    environ = {
        "DJANGO_ENV": "production",
        **STRICT_OK,
        variable: URL_VARIABLES[variable].format(password=head + char + tail),
    }
    try:
        shown = repr(load_config(environ)) + repr(site_config(environ)) + load_config(environ).database.masked_url
    except ImproperlyConfigured as error:
        shown = "".join(traceback.format_exception(error))
        assert str(error).startswith(variable) and "\n" not in str(error)
    assert head not in shown and tail not in shown, shown


def test_database_url__a_broken_ipv6_host_is_one_line():
    message = config_error({"DJANGO_ENV": "production", **STRICT_OK, "DATABASE_URL": "postgres://app:pw@[::1/app"})
    assert message.startswith("DATABASE_URL='postgres://app:***@[::1/app' cannot be parsed")


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://hooks.example.com/T0", False),
        ("https://hooks.example.com/T0", True),
        ("http://127.0.0.1:9000/relay", True),
        ("http://localhost:9000/relay", True),
    ],
)
def test_alert_webhook__plain_http_only_to_this_host_in_production(url, accepted):
    environ = {"DJANGO_ENV": "production", **STRICT_OK, "DBOPS_ALERT_WEBHOOK_URL": url}
    if accepted:
        assert load_config(environ).alerts.webhook_url == url
    else:
        assert config_error(environ).startswith("DBOPS_ALERT_WEBHOOK_URL='http://hooks.example.com/T0' is plain http")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"SECRET_KEY": "abc"}, "SECRET_KEY is too weak (3 characters, 3 distinct"),
        ({"SECRET_KEY": "a" * 60}, "SECRET_KEY is too weak (60 characters, 1 distinct"),
        ({"SECRET_KEY": "django-insecure-" + "x1y2z3" * 10}, "SECRET_KEY is a development default"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS='*' is not allowed"),
        ({"ALLOWED_HOSTS": "example.com,*"}, "ALLOWED_HOSTS='*' is not allowed"),
        ({"DBOPS_HEALTH_TOKEN": "x"}, "DBOPS_HEALTH_TOKEN is 1 characters"),
        ({"DJANGO_ROOT_URLCONF": "bench.urls"}, "DJANGO_ROOT_URLCONF='bench.urls' serves public"),
    ],
)
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_strict_environments__refuse_weak_site_settings(environment, override, expected):
    message = config_error({"DJANGO_ENV": environment, **STRICT_OK, **override})
    assert message.startswith(expected), message
    assert STRICT_OK["SECRET_KEY"] not in message and override.get("SECRET_KEY", "§") not in message


def test_strict_environments__debug_is_refused_in_staging_too():
    assert config_error({"DJANGO_ENV": "staging", **STRICT_OK, "DEBUG": "true"}).startswith("DEBUG=true is not allowed")


def test_strict_environments__https_and_session_defaults():
    site = site_config({"DJANGO_ENV": "production", **STRICT_OK})
    assert (site.hsts_seconds, site.ssl_redirect, site.session_cookie_age) == (31_536_000, False, 8 * 3600)
    relaxed = site_config({"DJANGO_ENV": "development"})
    assert (relaxed.hsts_seconds, relaxed.session_cookie_age) == (0, 14 * 86400)
    benchmark = {"DJANGO_ROOT_URLCONF": "bench.urls", "DJANGO_ALLOW_BENCHMARK_URLS": "true"}
    assert site_config({"DJANGO_ENV": "production", **STRICT_OK, **benchmark}).root_urlconf == "bench.urls"


def test_load_config__pitr_repository_in_the_bucket_and_a_maintenance_user():
    config = load_config(
        {
            **STRICT_OK,
            "DJANGO_ENV": "production",
            "DATABASE_BACKUP_S3_BUCKET": "site-backups",
            "DATABASE_BACKUP_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "DATABASE_BACKUP_S3_SECRET_ACCESS_KEY": SECRET_PASSWORD,
            "DATABASE_PITR_REPO_TYPE": "s3",
            "DATABASE_PITR_PG_USER": "pgbackrest",
            "DATABASE_PITR_PG_PASSWORD": SECRET_PASSWORD,
        }
    )
    assert config.pitr.repo_type == "s3" and config.pitr.repo_s3.bucket == "site-backups"
    assert config.pitr.maintenance_user == "pgbackrest" and config.pitr.s3_verify_tls
    assert SECRET_PASSWORD not in repr(config.pitr)


def test_from_env__no_database_url_and_no_opt_in_is_one_line_naming_both_ways():
    with pytest.raises(ImproperlyConfigured) as refused:
        from_env({"DJANGO_ENV": "development"}, base_dir=PROJECT_DIR)
    message = str(refused.value)
    assert "DATABASE_URL is not set" in message and "DBOPS_LOCALDB=true" in message and "\n" not in message
    local = from_env({"DJANGO_ENV": "development", "DBOPS_LOCALDB": "true"}, base_dir=PROJECT_DIR)
    assert local.database_url_from_env is False and "127.0.0.1" in local.database.masked_url


def test_s3_ca_file__one_setting_reaches_boto3_and_pgbackrest():
    config = load_config(
        {
            "DATABASE_BACKUP_S3_BUCKET": "site-backups",
            "DATABASE_BACKUP_S3_ENDPOINT_URL": "https://store.internal",
            "DATABASE_BACKUP_S3_CA_FILE": "/etc/ssl/private-ca.pem",
            "DATABASE_PITR_REPO_TYPE": "s3",
        }
    )
    storage = config.backup_storage()["OPTIONS"]
    assert storage["verify"] == "/etc/ssl/private-ca.pem"
    assert config.pitr.s3_ca_file == "/etc/ssl/private-ca.pem"
    own = load_config(
        {
            "DATABASE_BACKUP_S3_BUCKET": "site-backups",
            "DATABASE_BACKUP_S3_CA_FILE": "/etc/ssl/private-ca.pem",
            "DATABASE_PITR_S3_CA_FILE": "/etc/ssl/pgbackrest-ca.pem",
        }
    )
    assert own.pitr.s3_ca_file == "/etc/ssl/pgbackrest-ca.pem"


def test_s3_deadlines__every_storage_call_has_a_connect_and_read_timeout():
    config = load_config(
        {
            "DATABASE_BACKUP_S3_BUCKET": "b",
            "DATABASE_BACKUP_S3_CONNECT_TIMEOUT": "3",
            "DATABASE_BACKUP_S3_READ_TIMEOUT": "20",
        }
    )
    client_config = config.backup_storage()["OPTIONS"]["client_config"]
    assert (client_config.connect_timeout, client_config.read_timeout) == (3, 20)
    assert client_config.retries["max_attempts"] == 2
    assert "verify" not in config.backup_storage()["OPTIONS"]  # the system's CAs
    with pytest.raises(ImproperlyConfigured, match="DATABASE_BACKUP_S3_READ_TIMEOUT"):
        load_config({"DATABASE_BACKUP_S3_BUCKET": "b", "DATABASE_BACKUP_S3_READ_TIMEOUT": "0"})


def test_signing_key__short_keys_are_refused_and_the_key_is_never_shown():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_BACKUP_SIGNING_KEY is 8 characters"):
        load_config({"DATABASE_BACKUP_SIGNING_KEY": "tooshort"})
    config = load_config({"DATABASE_BACKUP_SIGNING_KEY": SECRET_PASSWORD * 5})
    assert config.backup_signing_key == SECRET_PASSWORD * 5 and SECRET_PASSWORD not in repr(config)


STRICT_SITE = {**STRICT_OK, "DJANGO_ENV": "production"}


@pytest.mark.parametrize(
    ("environ", "refusal"),
    [
        ({"DBOPS_HEALTH_TOKEN": "a" * 40}, "DBOPS_HEALTH_TOKEN is 40 characters, 1 distinct"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "0"}, "DJANGO_SECURE_HSTS_SECONDS=0"),
        ({"DJANGO_SESSION_COOKIE_AGE": str(10 * 365 * 86400)}, "DJANGO_SESSION_COOKIE_AGE=315360000"),
    ],
)
def test_strict__guessable_or_weakening_values_are_refused(environ, refusal):
    with pytest.raises(ImproperlyConfigured, match=refusal):
        load_config({**STRICT_SITE, **environ})


def test_strict__a_random_health_token_and_sane_https_settings_pass():
    load_config(
        {**STRICT_SITE, "DBOPS_HEALTH_TOKEN": "kq3J_x9vL2mPz7Rt8YwB5nCd4Fg6Hs1A", "DJANGO_SECURE_HSTS_SECONDS": "86400"}
    )


def test_django_env__set_but_empty_is_refused_not_taken_for_development():
    with pytest.raises(ImproperlyConfigured, match="DJANGO_ENV is set but empty"):
        load_config({"DJANGO_ENV": "", "DATABASE_URL": PG_URL})

"""The reference project's settings: environment (and `.env`) -> dbops' typed config -> Django settings.

dbops' own variables are validated by `dbops.conf.from_env`, the site's own (SECRET_KEY, DEBUG, ALLOWED_HOSTS,
...) by `dbops.conf.site_from_env`; this module only maps them onto Django's names. Bad values raise
`ImproperlyConfigured` with one line naming the variable. An existing site adopts dbops the same way:
docs/adopting.md.
"""

import os
from pathlib import Path

import django

import dbops.conf
from dbops.logins import login_settings

BASE_DIR = Path(__file__).resolve().parent.parent
# A .env file beside manage.py, when present, fills variables the environment does not set.
dbops.conf.read_dotenv(BASE_DIR / ".env")

# The reference project opts in to the project-local cluster when DATABASE_URL is unset (`make run`).
DBOPS = dbops.conf.from_env({"DBOPS_LOCALDB": "true", **os.environ}, base_dir=BASE_DIR)
SITE = dbops.conf.site_from_env(base_dir=BASE_DIR, root_urlconf="project.urls")

DEBUG = SITE.debug
SECRET_KEY = SITE.secret_key
ALLOWED_HOSTS = list(SITE.allowed_hosts)

DATABASES = DBOPS.databases()
DATABASE_ROUTERS = DBOPS.database_routers()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CACHES = {"default": DBOPS.cache}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "health_check",
    "dbops",
    # Admin logins are throttled: staff accounts here can restore the database.
    "axes",
]

# django-prometheus' per-view request metrics are opt-in: with its engine wrapper they cost 22 % throughput.
PROMETHEUS_MIDDLEWARE = DBOPS.prometheus_request_metrics
MIDDLEWARE = [
    *(["django_prometheus.middleware.PrometheusBeforeMiddleware"] if PROMETHEUS_MIDDLEWARE else []),
    # dbops first: the breaker must see (and turn into 503s) database failures from everything inside it.
    *DBOPS.middleware(),
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files in staging/production; development uses runserver's static view.
    *(["whitenoise.middleware.WhiteNoiseMiddleware"] if DBOPS.is_strict else []),
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    *(["django_prometheus.middleware.PrometheusAfterMiddleware"] if PROMETHEUS_MIDDLEWARE else []),
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

# django-axes: 5 wrong passwords for one username from one client address lock that pair out for 15 minutes, the
# address read through the proxies DBOPS_TRUSTED_PROXY_COUNT declares; DBOPS_LOGIN_ACCOUNT_FAILURE_LIMIT wrong
# passwords for one account from any addresses cool it off for 15 minutes (dbops.logins).
globals().update(login_settings(DBOPS))

ROOT_URLCONF = SITE.root_urlconf
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

if DBOPS.environment == "test":
    # Tests create many users: a fast hasher keeps them quick (never outside the test environment).
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Alert e-mails go to ADMINS through Django's mail (EMAIL_URL configures the transport).
# Django 6 takes plain addresses (name/address pairs are deprecated there); 5.2 needs the pairs.
ADMINS = (
    list(DBOPS.alerts.emails) if django.VERSION >= (6, 0) else [(address, address) for address in DBOPS.alerts.emails]
)
globals().update(SITE.email)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = SITE.static_root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # django-dbbackup's storage: any Django storage (e.g. S3 through django-storages) can replace it.
    "dbbackup": DBOPS.backup_storage(),
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if DBOPS.is_strict
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

SESSION_COOKIE_AGE = SITE.session_cookie_age
if DBOPS.is_strict:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = SITE.hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SITE.hsts_seconds > 0
    # Off unless asked: TLS usually ends at the proxy, which redirects; probes over plain http stay exempt.
    SECURE_SSL_REDIRECT = SITE.ssl_redirect
    SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # dbops' own events are JSON, one object per line (python-json-logger): log shippers parse them as they are.
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "dbops.logs.JsonFormatter"},
    },
    # psycopg_pool warns once per failed reconnection attempt of every pooled connection: hundreds per outage.
    "filters": {"repeats": {"()": "dbops.monitoring.log_filters.RepeatedMessageFilter", "interval": 60}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "events": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "dbops": {"handlers": ["events"], "level": "INFO", "propagate": False},
        "django": {"handlers": ["console"], "level": "INFO" if DEBUG else "WARNING", "propagate": False},
        # django-health-check logs every failing or warning probe with a traceback: at load-balancer probe
        # rates that floods the log. The endpoints and /metrics carry check state; keep only its errors.
        "health_check": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # django-dbbackup logs each pg_dump/pg_restore command line at DEBUG.
        "dbbackup": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "dbbackup.command": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "psycopg.pool": {"handlers": ["console"], "level": "WARNING", "filters": ["repeats"], "propagate": False},
    },
}

"""The only settings module: environment -> `apps.dbops.config` -> Django settings.

Every variable is read and validated in `apps.dbops.config.load_config`; this module only maps the typed
config onto Django's names. Bad values raise `ImproperlyConfigured` with one line naming the variable.
"""

import os

import django

from apps.dbops.config import PROJECT_DIR, load_config

DBOPS = load_config(os.environ)

BASE_DIR = PROJECT_DIR
DEBUG = DBOPS.debug
SECRET_KEY = DBOPS.secret_key
ALLOWED_HOSTS = list(DBOPS.allowed_hosts)

DATABASES = {"default": DBOPS.database.django_settings("default")}
if DBOPS.replica is not None:
    # Reads go to the replica while it is fresh (apps.dbops.replicas); tests mirror it onto the default database.
    DATABASES["replica"] = {**DBOPS.replica.django_settings("replica"), "TEST": {"MIRROR": "default"}}
    DATABASE_ROUTERS = ["apps.dbops.replicas.ReplicaRouter"]
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
    "apps.dbops",
]

# django-prometheus' per-view request metrics are opt-in: with its engine wrapper they cost 22 % throughput.
PROMETHEUS_MIDDLEWARE = DBOPS.prometheus_request_metrics
MIDDLEWARE = [
    *(["django_prometheus.middleware.PrometheusBeforeMiddleware"] if PROMETHEUS_MIDDLEWARE else []),
    *(["apps.dbops.middleware.QueryMonitoringMiddleware"] if DBOPS.query_monitoring else []),
    # Outermost of ours: it must see (and turn into 503s) database failures from everything inside it.
    *(["apps.dbops.middleware.CircuitBreakerMiddleware"] if DBOPS.breaker.enabled else []),
    # Read-your-writes: after a write in this request, reads stay on the primary.
    *(["apps.dbops.middleware.ReplicaRoutingMiddleware"] if DBOPS.replica is not None else []),
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
]

ROOT_URLCONF = DBOPS.root_urlconf
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
globals().update(DBOPS.email)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DBOPS.static_root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # django-dbbackup's storage: any Django storage (e.g. S3 through django-storages) can replace it.
    "dbbackup": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DBOPS.backup_dir)},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if DBOPS.is_strict
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

if DBOPS.is_strict:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "dbops": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django": {"handlers": ["console"], "level": "INFO" if DEBUG else "WARNING", "propagate": False},
        # django-health-check logs every failing or warning probe with a traceback: at load-balancer probe
        # rates that floods the log. The endpoints and /metrics carry check state; keep only its errors.
        "health_check": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # django-dbbackup logs each pg_dump/pg_restore command line at DEBUG.
        "dbbackup": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "dbbackup.command": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

"""A scratch site with popular third-party packages installed: their migrations are the real-world corpus.

Run with the corpus virtualenv (tests/migrations_safety/corpus/venv.py builds it) and DATABASE_URL set. Written the
way docs/adopting.md tells a site to add dbops (env style); nothing else of dbops is configured.
"""

import os
from pathlib import Path

import dbops.conf

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "corpus-site-only-for-migration-analysis"  # noqa: S105 - never served
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
SITE_ID = 1
ROOT_URLCONF = "tests.migrations_safety.corpus.site_urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"  # what most of these packages were written against
CMS_CONFIRM_VERSION4 = True
WAGTAIL_SITE_NAME = "corpus"
LANGUAGES = [("en", "English")]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "django.contrib.staticfiles",
    # wagtail
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.contrib.search_promotions",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    # django CMS
    "cms",
    "menus",
    "treebeard",
    "sekizai",
    "filer",
    "easy_thumbnails",
    # accounts and APIs
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "oauth2_provider",
    "guardian",
    "axes",
    # jobs and misc
    "django_celery_results",
    "django_celery_beat",
    "reversion",
    "constance",
    "health_check",
    "dbops",
    # bench/migration_corpus.py adds django-migration-linter here to compare it on the same migrations.
    *[app for app in os.environ.get("CORPUS_EXTRA_APPS", "").split(",") if app],
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
WAGTAILADMIN_BASE_URL = "http://corpus.invalid"
SILENCED_SYSTEM_CHECKS = ["treebeard.E001", "axes.W002"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "sekizai.context_processors.sekizai",
            ]
        },
    }
]
STATIC_URL = "/static/"

# --- dbops ---------------------------------------------------------------------------------------------------
DBOPS = dbops.conf.from_env(base_dir=BASE_DIR)
DATABASES = DBOPS.databases()
CACHES = {"default": DBOPS.cache}

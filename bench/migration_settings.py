"""Settings for bench/migration_analysis.py: the project's, plus the generated apps and, when installed, the linter."""

import importlib.util
import os

from project.settings import *  # noqa: F403 - extend the project's settings
from project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, *os.environ.get("BENCH_EXTRA_APPS", "").split(",")]
if importlib.util.find_spec("django_migration_linter"):
    INSTALLED_APPS.append("django_migration_linter")

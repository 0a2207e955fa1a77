"""The reference site as tests run it: manage.py in a new process, a production environment, the test database URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

from tests import PROJECT_DIR
from tests.parts.servers import dockerfile_command, gunicorn, http_get, server_environ

__all__ = ["dockerfile_command", "gunicorn", "http_get", "manage", "production_environ", "url_of_test_database"]


def manage(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run the reference project's manage.py in a new process (DJANGO_ENV=test, the given variables); wait for it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env={**env, "DJANGO_ENV": "test", **environ},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def url_of_test_database() -> str:
    """Return a URL for the database the tests use (pytest-django's test database)."""
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s["PASSWORD"] else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def production_environ(static_root: Path, **extra: str) -> dict[str, str]:
    """Return a production-mode server environment against the test database."""
    return server_environ(url_of_test_database(), DJANGO_STATIC_ROOT=str(static_root), **extra)

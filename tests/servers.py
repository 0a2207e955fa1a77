"""Test-side helpers around the real servers of bench/servers.py: production environment, test database URL."""

from __future__ import annotations

from pathlib import Path

from django.db import connection

from bench.harness import server_environ
from bench.servers import dockerfile_command, gunicorn, http_get

__all__ = ["dockerfile_command", "gunicorn", "http_get", "production_environ", "url_of_test_database"]


def url_of_test_database() -> str:
    """Return a URL for the database the tests use (pytest-django's test database)."""
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s["PASSWORD"] else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def production_environ(static_root: Path, **extra: str) -> dict[str, str]:
    """Return a production-mode server environment against the test database."""
    return server_environ(url_of_test_database(), DJANGO_STATIC_ROOT=str(static_root), **extra)

"""A password with every awkward character never shows: not in stderr, logs, health JSON, metrics or admin pages."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import quote

import pytest
from django.db import connection
from psycopg import sql

from tests import PROJECT_DIR
from tests.conftest import test_database_connection
from tests.parts.site import gunicorn, http_get, production_environ

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
HEAD, TAIL = "S3cretHead", "Tail9pw"
PASSWORD = f"{HEAD}/@:%#?{TAIL}"
TOKEN = "health-token-for-the-secrets-test-0123456789"


@pytest.fixture
def awkward_role():
    """Create a role whose password holds / @ : % # ?; yield its DATABASE_URL (percent-encoded, as it must be)."""
    with test_database_connection() as conn:
        conn.execute(sql.SQL("CREATE ROLE awkward LOGIN SUPERUSER PASSWORD {}").format(sql.Literal(PASSWORD)))
    s = connection.settings_dict
    yield f"postgres://awkward:{quote(PASSWORD, safe='')}@{s['HOST']}:{s['PORT']}/{s['NAME']}"
    with test_database_connection() as conn:
        conn.execute("DROP ROLE awkward")


def hidden(text: str) -> bool:
    return HEAD not in text and TAIL not in text


def test_secrets__a_served_site_never_shows_the_password(tmp_path, awkward_role):
    lines: list[bytes] = []
    environ = production_environ(tmp_path / "static", DATABASE_URL=awkward_role, DBOPS_HEALTH_TOKEN=TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    with gunicorn(environ, log=lines) as base:
        pages = [
            http_get(base + "/health/ready"),
            http_get(base + "/health/", headers=bearer),
            http_get(base + "/health/database/health", headers=bearer),
            http_get(base + "/health/database/performance", headers=bearer),
            http_get(base + "/metrics", headers=bearer),
            http_get(base + "/admin/login/"),
        ]
    assert [status for status, _ in pages][0] == 200
    assert all(hidden(body) for _, body in pages)
    assert hidden(b"".join(lines).decode(errors="replace"))


@pytest.mark.parametrize(
    "variable",
    ["DATABASE_URL", "DATABASE_REPLICA_URL", "CACHE_URL", "EMAIL_URL", "DBOPS_ALERT_WEBHOOK_URL"],
)
def test_secrets__a_refused_setting_says_so_on_stderr_without_the_password(variable):
    urls = {
        "DATABASE_URL": f"postgres://app:{PASSWORD}@db.internal:5432/app",
        "DATABASE_REPLICA_URL": f"postgres://app:{PASSWORD}@replica.internal:5432/app",
        "CACHE_URL": f"redis://:{PASSWORD}@cache.internal:6379/0",
        "EMAIL_URL": f"smtp://alerts:{PASSWORD}@mail.internal:587",
        "DBOPS_ALERT_WEBHOOK_URL": f"https://hook:{PASSWORD}@hooks.internal/T0",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))}
    env.update(
        DJANGO_ENV="production",
        SECRET_KEY="a-real-secret-" * 4,
        ALLOWED_HOSTS="example.com",
        DATABASE_URL="postgres://app:pw@db.internal:5432/app",
    )
    env[variable] = urls[variable]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(
        f"ImproperlyConfigured: {variable}"
    )
    assert hidden(result.stdout + result.stderr)

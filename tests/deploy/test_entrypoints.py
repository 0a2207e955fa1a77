"""manage.py, WSGI and ASGI print one line for bad settings, never a traceback or the password."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import PROJECT_DIR
from tests.conftest import SECRET_PASSWORD

pytestmark = pytest.mark.system


def run_python(args: list[str], **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_", "ENFORCE_"))}
    env.update(environ)
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("entry", "environ", "expected"),
    [
        (
            ["manage.py", "check"],
            {"DJANGO_ENV": "production", "DATABASE_URL": "sqlite:///db.sqlite3"},
            "requires PostgreSQL with pooling",
        ),
        (
            ["manage.py", "check"],
            {
                "DJANGO_ENV": "production",
                "DATABASE_URL": f"postgres://app:{SECRET_PASSWORD}@db/app",
                "DATABASE_POOL_SIZE": "abc",
            },
            "DATABASE_POOL_SIZE='abc' is not a whole number",
        ),
        (
            ["manage.py", "migrate"],
            {"DJANGO_ENV": "production", "DATABASE_URL": f"postgres://app:{SECRET_PASSWORD}@db:port/app"},
            "DATABASE_URL='postgres://app:***@db:port/app' cannot be parsed",
        ),
        (["-c", "import project.wsgi"], {"DJANGO_ENV": "staging"}, "DATABASE_URL is not set"),
        (["-c", "import project.asgi"], {"DJANGO_ENV": "nowhere"}, "DJANGO_ENV='nowhere' is not a known environment"),
    ],
)
def test_entrypoint__bad_settings_print_one_line(entry, environ, expected):
    result = run_python(entry, **environ)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ImproperlyConfigured: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert SECRET_PASSWORD not in result.stderr + result.stdout

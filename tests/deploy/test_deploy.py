"""The Docker image's command, run here against the test cluster with production settings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import PROJECT_DIR
from tests.parts.site import dockerfile_command, gunicorn, http_get, production_environ

pytestmark = pytest.mark.system


@pytest.mark.smoke  # also on the second Django target
@pytest.mark.django_db(transaction=True)
def test_dockerfile_command__serves_health_and_admin_with_production_settings(tmp_path):
    env = production_environ(tmp_path / "static")
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert collect.returncode == 0, collect.stderr

    assert dockerfile_command()[:3] == ["gunicorn", "--config", "gunicorn.conf.py"]
    with gunicorn(env) as base:
        assert http_get(base + "/health/live") == (200, "ok\n")
        status, body = http_get(base + "/health/ready")
        assert status == 200, body
        status, body = http_get(base + "/admin/login/")
        assert status == 200
        stylesheet = next(part.split('"')[0] for part in body.split('href="') if part.split('"')[0].endswith(".css"))
        assert http_get(base + stylesheet)[0] == 200  # whitenoise serves the hashed admin static files


def test_gunicorn_config__bad_settings_stop_the_master_with_one_line(tmp_path):
    env = production_environ(tmp_path / "static", DATABASE_POOL_TIMEOUT="-1")
    command = dockerfile_command()
    result = subprocess.run(
        [sys.executable, "-m", command[0], *command[1:], "--check-config"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_POOL_TIMEOUT=-1 is negative" in result.stderr
    assert "Traceback" not in result.stderr

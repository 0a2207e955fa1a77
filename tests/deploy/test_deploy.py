"""The Docker image's command, run here against the test cluster with production settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return the Dockerfile's instructions as (keyword, argument) with continuation lines joined."""
    text = (PROJECT_DIR / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, argument = line.strip().partition(" ")
            found.append((keyword.upper(), argument.strip()))
    return found


def test_dockerfile__its_own_build_lines_run_in_order_in_a_fresh_copy(tmp_path):
    """The image's ENV and its manage.py RUN steps, as written, in a copy of the project (no daemon builds here).

    The steps that install (apt-get, pip, useradd, chown) are the only ones left out: this virtualenv already holds
    what requirements.txt pins. collectstatic once failed here: its build-time SECRET_KEY was one production refuses.
    """
    import os
    import shlex
    import shutil

    app = tmp_path / "app"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):  # COPY . . (what the build context holds)
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_DIR / name, app / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_", "SECRET_KEY"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    ran = []
    for keyword, argument in dockerfile_instructions():
        if keyword == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(argument)))
        elif keyword == "RUN":
            for step in argument.split("&&"):
                if "manage.py" in step:
                    done = subprocess.run(  # noqa: S603 - the Dockerfile's own line, through the shell it is written for
                        ["/bin/sh", "-c", step.strip()], cwd=app, env=env, capture_output=True, text=True, timeout=300
                    )
                    assert done.returncode == 0, f"{step.strip()}\n{done.stderr[-2000:]}"
                    ran.append(step.strip())
    assert env["DJANGO_ENV"] == "production" and any("collectstatic" in step for step in ran), ran
    assert (app / "var" / "static" / "admin").is_dir() or any((app / "var").rglob("admin/css"))


def test_systemd_units__sandboxed_as_systemd_analyze_grades_them():
    import re as regex
    import shutil

    from tests.tiers import require_tool

    require_tool("systemd-analyze", how="Debian's systemd", found=bool(shutil.which("systemd-analyze")))
    for unit in sorted((PROJECT_DIR / "ops" / "systemd").glob("*.service")):
        graded = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True, check=False
        )
        exposure = regex.search(r"Overall exposure level for \S+: (\d+\.\d+)", graded.stdout)
        assert exposure, graded.stdout[-500:] + graded.stderr[-500:]
        assert float(exposure.group(1)) <= 2.0, f"{unit.name}: {exposure.group(0)}"


@pytest.mark.django_db(transaction=True)
def test_dockerfile_healthcheck__asks_the_port_the_server_binds(tmp_path):
    import json
    import os
    import re as regex

    healthcheck = regex.search(r"^\s+CMD (\[.*\])$", (PROJECT_DIR / "Dockerfile").read_text(), regex.M)
    argv = json.loads(healthcheck.group(1))
    assert argv[0] == "python"
    with gunicorn(production_environ(tmp_path / "static")) as base:
        port = base.rsplit(":", 1)[1]
        assert port != "8000"
        done = subprocess.run(
            [sys.executable, *argv[1:]], env={**os.environ, "PORT": port}, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr

"""Real servers for tests: gunicorn started the way the Dockerfile starts it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.db import connection

from apps.dbops.config import PROJECT_DIR
from apps.dbops.localdb import free_port


def dockerfile_command() -> list[str]:
    """Return the image's CMD, read from the Dockerfile so the test runs exactly what the image runs."""
    text = (PROJECT_DIR / "Dockerfile").read_text()
    return json.loads(re.search(r"^CMD (\[.*\])$", text, re.MULTILINE).group(1))


def url_of_test_database() -> str:
    """Return a URL for the database the tests use (pytest-django's test database)."""
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s["PASSWORD"] else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def production_environ(static_root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_", "ENFORCE_", "PORT"))}
    env.update(
        DJANGO_ENV="production",
        DATABASE_URL=url_of_test_database(),
        SECRET_KEY="production-test-secret-" * 3,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_STATIC_ROOT=str(static_root),
        DATABASE_POOL_SIZE="2",
        DATABASE_POOL_MAX_OVERFLOW="4",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="4",
    )
    env.update(extra)
    return env


def http_get(url: str, timeout: float = 5, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback test URL
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextlib.contextmanager
def gunicorn(environ: dict[str, str], *, ready_path: str = "/health/live", timeout: float = 30):
    """Run the Dockerfile's CMD on a free loopback port; yield the base URL."""
    port = free_port()
    env = {**environ, "PORT": str(port)}
    command = dockerfile_command()
    command = [sys.executable, "-m", command[0], *command[1:], "--bind", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {process.stdout.read().decode()[-2000:]}")
            try:
                http_get(base + ready_path, timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not answer in time") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        process.stdout.close()

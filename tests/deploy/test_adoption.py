"""An existing site adopts dbops as a user would: the wheel in a fresh virtualenv, the edits of docs/adopting.md.

The wheel is built from this checkout and installed with its declared dependency ranges into a new virtualenv;
`django-admin startproject` makes the site; every block docs/adopting.md marks for the chosen settings style is
applied exactly as written. The site then runs against its own database on the test cluster.
"""

from __future__ import annotations

import http.cookies
import json
import os
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from dbops.localdb import free_port
from tests import PROJECT_DIR
from tests.parts.servers import wait_for_port
from tests.parts.site import http_get

pytestmark = pytest.mark.system

GUIDE = PROJECT_DIR / "docs" / "adopting.md"
EDIT = re.compile(r"<!-- adopt(?:\[(\w+)\])?: (append|replace) (\S+) -->\n```\w*\n(.*?)```", re.DOTALL)
HTTPS = {"X-Forwarded-Proto": "https"}  # as behind the TLS-terminating proxy the guide's production block assumes


def run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def adopted_venv(tmp_path_factory) -> Path:
    """Build django-dbops from this checkout and install the wheel into a new virtualenv; yield its bin folder."""
    work = tmp_path_factory.mktemp("adoption")
    built = run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(PROJECT_DIR)], cwd=work)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel = next((work / "dist").glob("django_dbops-*.whl"))
    assert next((work / "dist").glob("django_dbops-*.tar.gz"))

    created = run([sys.executable, "-m", "venv", str(work / "venv")], cwd=work)
    assert created.returncode == 0, created.stderr
    bin_dir = work / "venv" / "bin"
    installed = run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{wheel}[redis]"],
        cwd=work,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return bin_dir


def apply_guide(site: Path, style: str) -> int:
    """Apply every block of docs/adopting.md marked for all styles or for `style`; return how many."""
    applied = 0
    for only, action, relative, body in EDIT.findall(GUIDE.read_text()):
        if only and only != style:
            continue
        target = site / relative
        text = target.read_text()
        if action == "append":
            text = f"{text}\n{body}"
        else:
            old = "\n".join(line[1:] for line in body.splitlines() if line.startswith("-"))
            new = "\n".join(line[1:] for line in body.splitlines() if line.startswith("+"))
            assert old in text, f"docs/adopting.md expects {old!r} in {relative}"
            text = text.replace(old, new, 1)
        target.write_text(text)
        applied += 1
    return applied


@pytest.fixture
def site_database():
    """Create an empty database for the adopted site on the test cluster; yield its Django settings entry."""
    s = connection.settings_dict
    name = f"adopted_{secrets.token_hex(4)}"
    admin = {"host": s["HOST"], "port": s["PORT"], "user": s["USER"], "password": s["PASSWORD"] or None}
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield {**s, "NAME": name}
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def new_site(bin_dir: Path, parent: Path, style: str) -> Path:
    site = parent / f"site_{style}"
    site.mkdir()
    made = run([str(bin_dir / "django-admin"), "startproject", "mysite", str(site)], cwd=parent)
    assert made.returncode == 0, made.stderr
    return site


def site_environ(bin_dir: Path, **extra: str) -> dict[str, str]:
    """Return a user's shell: the new virtualenv first on PATH, nothing of this test run's own settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "DJANGO_", "DBOPS_", "ENFORCE_", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def manage(site: Path, bin_dir: Path, env: dict[str, str], *args: str, ok: bool = True):
    result = run([str(bin_dir / "python"), "manage.py", *args], cwd=site, env=env, timeout=300)
    if ok:
        assert result.returncode == 0, f"manage.py {' '.join(args)}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result


def url_of(entry: dict) -> str:
    password = f":{entry['PASSWORD']}" if entry["PASSWORD"] else ""
    return f"postgres://{entry['USER']}{password}@{entry['HOST']}:{entry['PORT']}/{entry['NAME']}"


class Browser:
    """Just enough of a browser for Django's login form: cookies by hand (they are Secure, the proxy says https)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}

    def request(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
        headers = {**HTTPS, "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if data is not None:
            headers["Referer"] = f"https://{urllib.parse.urlsplit(self.base).netloc}{path}"
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body, headers=headers)  # noqa: S310 - loopback
        opener = urllib.request.build_opener(NoRedirect)
        try:
            response = opener.open(request, timeout=30)
            status, text, got = response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as error:
            status, text, got = error.code, error.read().decode(), error.headers
        for header in got.get_all("Set-Cookie") or []:
            cookie = http.cookies.SimpleCookie(header)
            self.cookies.update({name: morsel.value for name, morsel in cookie.items()})
        return status, text, dict(got)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def plain_http_status(url: str) -> int:
    """GET over plain http without following a redirect (a load balancer's probe counts a 3xx as healthy)."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=15) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def serve_wsgi(site: Path, bin_dir: Path, env: dict[str, str]):
    """Serve the site's own WSGI application (mysite/wsgi.py) with wsgiref: no start-up checks, no database."""
    port = free_port()
    code = (
        "from wsgiref.simple_server import make_server; from mysite.wsgi import application; "
        f"make_server('127.0.0.1', {port}, application).serve_forever()"
    )
    process = subprocess.Popen(
        [str(bin_dir / "python"), "-c", code], cwd=site, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(port, process, timeout=60)
    return process, f"http://127.0.0.1:{port}"


def serve(site: Path, bin_dir: Path, env: dict[str, str]):
    port = free_port()
    process = subprocess.Popen(
        [str(bin_dir / "python"), "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=site,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process, timeout=60)
    return process, f"http://127.0.0.1:{port}"


@pytest.mark.django_db
def test_adoption__environment_driven_site_runs_every_feature(adopted_venv, tmp_path, site_database, redis_server):
    site = new_site(adopted_venv, tmp_path, "env")
    assert apply_guide(site, "env") >= 7
    env = site_environ(
        adopted_venv,
        DJANGO_ENV="production",
        DATABASE_URL=url_of(site_database),
        # The test cluster's connection budget is shared with the rest of the suite: a small pool.
        DATABASE_POOL_SIZE="2",
        DATABASE_POOL_MAX_OVERFLOW="4",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DBOPS_HEALTH_TOKEN=secrets.token_urlsafe(32),
        DATABASE_BACKUP_SIGNING_KEY=secrets.token_urlsafe(32),
        CACHE_URL=redis_server,  # production wants a shared cache (dbops.W006 otherwise)
    )

    sqlite = manage(site, adopted_venv, {**env, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}, "check", ok=False)
    assert sqlite.returncode == 1
    assert sqlite.stderr.strip().splitlines() == [
        "ImproperlyConfigured: DATABASE_URL uses engine 'django.db.backends.sqlite3', but DJANGO_ENV=production "
        "requires PostgreSQL with pooling: set it to postgres://USER:PASSWORD@HOST:PORT/NAME."
    ]

    manage(site, adopted_venv, env, "migrate", "--noinput")
    manage(site, adopted_venv, env, "check")
    deploy = manage(site, adopted_venv, env, "check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in deploy.stdout
    manage(site, adopted_venv, env, "health_check", "dbops:health_ready", "--no-http")
    manage(site, adopted_venv, env, "backup")
    verified = json.loads(manage(site, adopted_venv, env, "backup_verify", "--json").stdout)
    assert verified["verification"] == "passed", verified
    assert list((site / "var" / "backups").glob("*.dump*")), "the backup lands in the site's own var/backups"
    manage(site, adopted_venv, env, "health_check", "dbops:health", "--no-http")
    report = json.loads(manage(site, adopted_venv, env, "migration_report", "--json").stdout)
    assert report["migrations"] == []  # everything applied: nothing pending to grade

    superuser = {"DJANGO_SUPERUSER_USERNAME": "ops", "DJANGO_SUPERUSER_PASSWORD": secrets.token_urlsafe(16)}
    manage(site, adopted_venv, {**env, **superuser}, "createsuperuser", "--noinput", "--email", "ops@example.com")
    server, base = serve(site, adopted_venv, env)
    try:
        # The guide's production block redirects plain http to https; probes and /metrics must answer all the same.
        assert plain_http_status(base + "/ops/health/ready") == 200
        assert plain_http_status(base + "/ops/health/live") == 200
        assert plain_http_status(base + "/ops/metrics") == 401  # the token, not a redirect
        assert plain_http_status(base + "/ops/health/") == 301  # the detail endpoints carry a token: https only
        assert plain_http_status(base + "/admin/login/") == 301
        assert http_get(base + "/ops/health/ready", headers=HTTPS)[0] == 200
        assert http_get(base + "/ops/health/", headers=HTTPS)[0] == 401  # details need staff or the token
        browser = Browser(base)
        assert browser.request("/admin/login/")[0] == 200
        status, _, headers = browser.request(
            "/admin/login/?next=/admin/",
            {
                "username": superuser["DJANGO_SUPERUSER_USERNAME"],
                "password": superuser["DJANGO_SUPERUSER_PASSWORD"],
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
        )
        assert (status, headers.get("Location")) == (302, "/admin/")
        status, page, _ = browser.request("/admin/dbops/dashboard/")
        assert status == 200
        assert "Recent backups" in page and "Database “default”" in page
    finally:
        server.terminate()
        server.wait(timeout=30)

    # With the database gone the readiness probe must fail over plain http: 503, never a redirect. (runserver
    # refuses to start without its database: the site's WSGI application is served by the standard library.)
    down = {**env, "DATABASE_URL": f"postgres://app:x@127.0.0.1:{free_port()}/app"}
    server, base = serve_wsgi(site, adopted_venv, down)
    try:
        assert plain_http_status(base + "/ops/health/ready") == 503
        assert plain_http_status(base + "/ops/health/live") == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.django_db
def test_adoption__python_settings_site_refuses_sqlite_then_runs_on_postgresql(adopted_venv, tmp_path, site_database):
    site = new_site(adopted_venv, tmp_path, "python")
    assert apply_guide(site, "python") >= 6
    env = site_environ(adopted_venv)

    # startproject's SQLite DATABASES with the guide's environment="production": refused in one line.
    sqlite = manage(site, adopted_venv, env, "check", ok=False)
    assert sqlite.returncode == 1
    assert len(sqlite.stderr.strip().splitlines()) == 1
    assert sqlite.stderr.startswith(
        "ImproperlyConfigured: DATABASES['default'] uses engine 'django.db.backends.sqlite3'"
    )

    # An existing site has its own PostgreSQL DATABASES where startproject put SQLite.
    settings_file = site / "mysite" / "settings.py"
    entry = {key: site_database[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")}
    own = f'DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", **{entry!r}}}}}\n'
    settings_file.write_text(re.sub(r"^DATABASES = \{.*?^\}\n", own, settings_file.read_text(), 1, re.M | re.S))

    manage(site, adopted_venv, env, "migrate", "--noinput")
    deploy = manage(site, adopted_venv, env, "check", "--deploy")
    # The site's own warnings (DEBUG, SECRET_KEY) are its own; dbops says that its token and signing key are missing
    # and that startproject's local-memory cache is per-process.
    found = set(re.findall(r"dbops\.[EW]\d+", deploy.stdout + deploy.stderr))
    assert found == {"dbops.W003", "dbops.W006", "dbops.W011"}
    manage(site, adopted_venv, env, "health_check", "dbops:health_ready", "--no-http")
    show = "from dbops.database.pool import pool_max_size as m; print(m('default'))"  # the web processes' pool
    pool = manage(site, adopted_venv, env, "shell", "-c", show)
    assert pool.stdout.strip().splitlines()[-1] == "30"  # the guide's DATABASE_POOL_SIZE 20 + overflow 10

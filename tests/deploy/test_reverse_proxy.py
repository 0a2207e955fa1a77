"""Admin lockouts behind a real reverse proxy: nginx on loopback in front of the image's gunicorn.

Clients come from different loopback addresses (127.0.0.N), nginx appends each one's address to X-Forwarded-For
as the README's set-up does, and the site declares that one proxy (DBOPS_TRUSTED_PROXY_COUNT=1).
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

import pytest

from tests import PROJECT_DIR
from tests.parts.servers import free_port, gunicorn, wait_for_port
from tests.parts.site import production_environ
from tests.tiers import require_tool

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]

PASSWORD = "the-real-admin-password-1"  # noqa: S105 - a test account's


@pytest.fixture
def nginx_in_front(tmp_path, redis_server, django_user_model):
    """Yield a function login(client_number, password) -> status through nginx in front of gunicorn."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if shutil.which("/usr/sbin/nginx") else None)
    require_tool("nginx", how="make test installs Debian's nginx-light", found=nginx is not None)
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    # The server hashes as production does (the suite's own settings use a fast hasher the server does not know).
    hashed = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    django_user_model.objects.create(username="admin", password=hashed, is_staff=True, is_superuser=True)
    env = production_environ(tmp_path / "static", DBOPS_TRUSTED_PROXY_COUNT="1", CACHE_URL=redis_server)
    collected = subprocess.run(  # the admin's pages need the static manifest, as in the image
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=PROJECT_DIR, env=env, check=False
    )
    assert collected.returncode == 0
    with gunicorn(env) as base:
        port = free_port()
        folder = tmp_path / "nginx"
        folder.mkdir()
        (folder / "nginx.conf").write_text(
            f"daemon off; user root; pid {folder}/nginx.pid; error_log {folder}/error.log;\n"
            "events {}\n"
            f"http {{ access_log off; client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;\n"
            f"  fastcgi_temp_path {folder}/fastcgi; uwsgi_temp_path {folder}/uwsgi; scgi_temp_path {folder}/scgi;\n"
            f"  server {{ listen 127.0.0.1:{port};\n"
            f"    location / {{ proxy_pass {base}; proxy_set_header Host $host;\n"
            "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } } }\n"
        )
        process = subprocess.Popen(  # noqa: S603 - Debian's nginx with a throwaway config, loopback only
            [nginx, "-c", str(folder / "nginx.conf"), "-p", str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, process, timeout=10)

            def login(client: int, password: str) -> int:
                return _login_through(port, f"127.0.0.{client}", password)

            yield login
        finally:
            process.terminate()
            process.wait(timeout=10)


def _login_through(port: int, source: str, password: str) -> int:
    """Sign in to the admin from `source` (a loopback address) through the proxy; return the POST's status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    try:
        conn.request("GET", "/admin/login/?next=/admin/")
        page = conn.getresponse()
        body = page.read().decode()
        found = re.search(r"csrftoken=([^;]+)", page.getheader("Set-Cookie") or "")
        assert found, (page.status, page.getheaders(), body[:300])
        cookie = found.group(1)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
        form = urllib.parse.urlencode({"username": "admin", "password": password, "csrfmiddlewaretoken": token})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={cookie}"}
        conn.request("POST", "/admin/login/?next=/admin/", body=form, headers=headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def test_reverse_proxy__one_client_cannot_lock_the_admin_out_nor_rotate_around_the_account_limit(nginx_in_front):
    login = nginx_in_front
    assert [login(7, "wrong") for _ in range(5)] == [200, 200, 200, 200, 429]  # axes: the fifth locks the pair
    assert login(7, PASSWORD) == 429  # that client is locked out...
    assert login(9, PASSWORD) == 302  # ...the real admin, at another address, is not (and the count starts over)

    started = time.monotonic()
    for attempt in range(20):  # four wrong passwords from each of five addresses: none reaches its own lockout
        assert login(20 + attempt // 4, "wrong") == 200
    assert login(30, PASSWORD) == 200  # the account cools off whatever the address: even the right one is refused
    assert time.monotonic() - started < 120

"""Admin lockouts nobody can aim or rotate around (django-axes keyed on the real client, plus a per-account cool-off).

The site sits behind one reverse proxy that appends X-Forwarded-For (a same-host nginx): REMOTE_ADDR is always the
proxy's 127.0.0.1, the header holds the client.
"""

from __future__ import annotations

import dataclasses

import pytest
from django.core.cache import caches
from django.test import Client

from dbops.logins import login_settings

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]

PASSWORD = "the-real-admin-password-1"  # noqa: S105 - a test account's


@pytest.fixture
def behind_proxy(settings, django_user_model):
    """One trusted proxy; an admin account; an empty account-failure count."""

    def configure(proxies: int = 1) -> None:
        settings.DBOPS = dataclasses.replace(settings.DBOPS, trusted_proxy_count=proxies)
        for name, value in login_settings(settings.DBOPS).items():
            setattr(settings, name, value)

    configure()
    caches[settings.DBOPS.breaker.cache_alias].clear()
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    return configure


def login(client_address: str, password: str, *, forwarded: str | None = None) -> int:
    """POST the admin login through the proxy for `client_address`; return the status (302: signed in)."""
    headers = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": forwarded or client_address}
    response = Client().post("/admin/login/?next=/admin/", {"username": "admin", "password": password}, **headers)
    return response.status_code


def test_lockout__five_wrong_passwords_from_one_client_do_not_lock_the_real_admin_out(behind_proxy):
    for _ in range(5):
        login("203.0.113.7", "wrong")
    assert login("203.0.113.7", PASSWORD) == 429  # that client is locked out
    assert login("198.51.100.2", PASSWORD) == 302  # the real admin, elsewhere, is not


def test_lockout__rotating_addresses_does_not_reset_the_account_cool_off(behind_proxy):
    def wrong_from_rotating_addresses(count: int, first: int) -> None:
        for n in range(count):
            login(f"203.0.113.{first + n // 4}", "wrong")  # four per address: one short of its own lockout

    wrong_from_rotating_addresses(19, first=1)
    assert login("198.51.100.2", PASSWORD) == 302  # below the account limit: the real password works (and resets it)
    wrong_from_rotating_addresses(20, first=50)
    # The account cools off whatever the address: even the right password is refused, so no guess is checked.
    assert login("198.51.100.3", PASSWORD) == 200
    assert login("198.51.100.4", PASSWORD) == 200


def test_lockout__a_forged_forwarded_header_cannot_make_a_client_look_like_many(behind_proxy):
    for n in range(5):  # a client prepending a different fake address each time
        login("203.0.113.7", "wrong", forwarded=f"10.9.9.{n}, 203.0.113.7")
    assert login("203.0.113.7", PASSWORD, forwarded="10.9.9.99, 203.0.113.7") == 429  # all one address: the proxy's


def test_lockout__without_a_declared_proxy_the_header_is_ignored(behind_proxy):
    behind_proxy(proxies=0)
    for n in range(5):
        login(f"203.0.113.{n}", "wrong")  # a direct client varying the header: all REMOTE_ADDR 127.0.0.1
    assert login("198.51.100.2", PASSWORD) == 429

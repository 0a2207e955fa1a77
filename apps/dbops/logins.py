"""Admin logins nobody can aim or rotate around: the client's real address, and a cool-off per account.

django-axes locks a username from one client address after AXES_FAILURE_LIMIT wrong passwords. Two gaps remain
on a real site. Behind a reverse proxy every client is the proxy's address, so anyone locks the real admin out:
`axes_settings()` reads the client address through django-ipware from the proxies the site declares
(DBOPS_TRUSTED_PROXY_COUNT), and ignores X-Forwarded-For when it declares none (a header anyone can send).
And rotating source addresses gives every address its own allowance: `AccountCoolOffBackend` counts wrong passwords
per account across all addresses in the shared cache and, past DBOPS_LOGIN_ACCOUNT_FAILURE_LIMIT, refuses that
account for the cool-off whatever the address. The account limit is several times the per-address one: one client
cannot trip it, and an attacker who can is also one the per-address lock alone would let guess freely.
"""

from __future__ import annotations

import datetime
import hashlib

from django.core.cache import caches
from django.core.exceptions import PermissionDenied

COOLOFF = datetime.timedelta(minutes=15)
PER_ADDRESS_LIMIT = 5


def axes_settings(*, trusted_proxy_count: int) -> dict:
    """Return django-axes' settings for a site behind `trusted_proxy_count` reverse proxies (0: none)."""
    settings: dict = {
        "AXES_FAILURE_LIMIT": PER_ADDRESS_LIMIT,
        "AXES_COOLOFF_TIME": COOLOFF,
        "AXES_LOCKOUT_PARAMETERS": [["username", "ip_address"]],
        "AXES_RESET_ON_SUCCESS": True,
    }
    if trusted_proxy_count:
        # Each proxy appends the address it saw; the last one is REMOTE_ADDR itself. ipware counts the proxies
        # listed in the header and falls back to REMOTE_ADDR when the header holds more (a client forged some).
        settings["AXES_IPWARE_META_PRECEDENCE_ORDER"] = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
        settings["AXES_IPWARE_PROXY_COUNT"] = trusted_proxy_count - 1
        settings["AXES_IPWARE_PROXY_ORDER"] = "right-most"
    else:
        settings["AXES_IPWARE_META_PRECEDENCE_ORDER"] = ["REMOTE_ADDR"]
    return settings


def login_settings(config) -> dict:
    """Return django-axes' settings and AUTHENTICATION_BACKENDS for `config` (a DbopsConfig), for settings.py."""
    return {
        **axes_settings(trusted_proxy_count=config.trusted_proxy_count),
        "AUTHENTICATION_BACKENDS": [
            "axes.backends.AxesStandaloneBackend",
            "dbops.logins.AccountCoolOffBackend",
            "django.contrib.auth.backends.ModelBackend",
        ],
    }


def _key(username: str) -> str:
    return "dbops:login-failures:" + hashlib.sha256(username.strip().lower().encode()).hexdigest()


def _cache():
    from dbops.conf import get_config

    return caches[get_config().breaker.cache_alias]


def account_failures(username: str) -> int:
    return int(_cache().get(_key(username)) or 0)


def record_failure(sender, credentials, request=None, **kwargs) -> None:
    """`user_login_failed` receiver: count a wrong password for the account, whatever the client address."""
    username = (credentials or {}).get("username")
    if not username or getattr(request, "dbops_account_cooling", False):
        return  # a refusal during the cool-off is not a guess: it must not extend it
    cache, key = _cache(), _key(username)
    cache.add(key, 0, timeout=COOLOFF.total_seconds())
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=COOLOFF.total_seconds())


def reset_failures(sender, request=None, user=None, **kwargs) -> None:
    """`user_logged_in` receiver: a correct password ends the count for that account."""
    if user is not None:
        _cache().delete(_key(user.get_username()))


class AccountCoolOffBackend:
    """First authentication backend: refuse an account past its failure limit across addresses (no password check)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        from dbops.conf import get_config

        if username and account_failures(username) >= get_config().login_account_failure_limit:
            if request is not None:
                request.dbops_account_cooling = True
            raise PermissionDenied("too many wrong passwords for this account: try again later")
        return None  # no opinion: the next backend checks the password

    # No get_user(): this backend never signs anyone in, so no session may name it (Django's force_login and
    # session lookups pick the first backend that has one).

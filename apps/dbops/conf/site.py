"""Optional: a site's own settings from the environment, refused when unsafe in staging/production.

dbops itself never needs these; the reference project (and any site that likes the same rules) reads
SECRET_KEY, DEBUG, ALLOWED_HOSTS, the static root, the URLconf and EMAIL_URL through `site_from_env()`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from dbops.conf.config import STRICT_ENVIRONMENTS
from dbops.conf.loading import SettingsReader
from dbops.conf.masking import credentials_need_encoding, encoding_hint, mask_url

INSECURE_SECRET_KEY = "django-insecure-dbops-development-only"  # noqa: S105 - the known-bad default


@dataclasses.dataclass(frozen=True)
class SiteConfig:
    """A site's own settings that staging/production must not leave at development values."""

    debug: bool
    secret_key: str = dataclasses.field(repr=False)
    allowed_hosts: tuple[str, ...]
    static_root: Path
    root_urlconf: str
    email: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    hsts_seconds: int = 0
    ssl_redirect: bool = False
    session_cookie_age: int = 14 * 86400


def _email(reader: SettingsReader) -> dict[str, Any]:
    """Django's EMAIL_* settings from EMAIL_URL (smtp://, smtps://, consolemail://, ...); empty when unset."""
    url = reader.raw("EMAIL_URL")
    if url is None:
        return {}
    if credentials_need_encoding(url):
        raise ImproperlyConfigured(encoding_hint("EMAIL_URL", url))
    try:
        parsed = environ.Env.email_url_config(url)
    except Exception:
        parsed = {}
    if not parsed.get("EMAIL_BACKEND"):
        raise ImproperlyConfigured(
            f"EMAIL_URL={mask_url(url)!r} is not a mail URL: use smtp://USER:PASSWORD@HOST:587 (or smtps://, "
            "consolemail://)."
        )
    return parsed


# Strict environments: HSTS long enough to matter, staff sessions short enough to end.
MIN_STRICT_HSTS_SECONDS = 86_400
MAX_STRICT_SESSION_SECONDS = 7 * 86_400


def site_from_env(
    environ_mapping: Mapping[str, str] | None = None, *, base_dir: Path | str, root_urlconf: str
) -> SiteConfig:
    """Validate the site's own settings: SECRET_KEY, DEBUG, ALLOWED_HOSTS, URLconf, static root, mail, HTTPS."""
    reader = SettingsReader(os.environ if environ_mapping is None else environ_mapping)
    environment = reader.environment()
    strict = environment in STRICT_ENVIRONMENTS

    debug = reader.get("DEBUG", default=environment == "development")
    if strict and debug:
        raise ImproperlyConfigured(f"DEBUG=true is not allowed when DJANGO_ENV={environment}: set DEBUG=false.")

    secret_key = reader.raw("SECRET_KEY") or ""
    if strict:
        _check_secret_key(secret_key, environment)

    allowed_hosts = reader.get(
        "ALLOWED_HOSTS", default=() if strict else ("localhost", "127.0.0.1", "[::1]", "testserver")
    )
    if strict and not allowed_hosts:
        raise ImproperlyConfigured(
            f"ALLOWED_HOSTS is empty with DJANGO_ENV={environment}: set it to the site's host names, comma-separated."
        )
    if strict and "*" in allowed_hosts:
        raise ImproperlyConfigured(
            f"ALLOWED_HOSTS='*' is not allowed with DJANGO_ENV={environment}: name the site's hosts (Host header "
            "poisoning reaches password-reset links and cache keys)."
        )

    urlconf = reader.get("DJANGO_ROOT_URLCONF", default=root_urlconf)
    if strict and urlconf.startswith("bench.") and not reader.get("DJANGO_ALLOW_BENCHMARK_URLS"):
        raise ImproperlyConfigured(
            f"DJANGO_ROOT_URLCONF={urlconf!r} serves public, database-bound benchmark endpoints: not with "
            f"DJANGO_ENV={environment} (benchmarks set DJANGO_ALLOW_BENCHMARK_URLS=true)."
        )
    hsts_seconds = reader.get("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000 if strict else 0)
    if strict and hsts_seconds < MIN_STRICT_HSTS_SECONDS:
        raise ImproperlyConfigured(
            f"DJANGO_SECURE_HSTS_SECONDS={hsts_seconds} with DJANGO_ENV={environment}: browsers would accept the "
            f"site over plain http; use at least {MIN_STRICT_HSTS_SECONDS} (a day; a year is the default)."
        )
    session_cookie_age = reader.get("DJANGO_SESSION_COOKIE_AGE", default=8 * 3600 if strict else 14 * 86400)
    if strict and session_cookie_age > MAX_STRICT_SESSION_SECONDS:
        raise ImproperlyConfigured(
            f"DJANGO_SESSION_COOKIE_AGE={session_cookie_age} with DJANGO_ENV={environment}: a staff session can "
            f"restore the database; keep it at most {MAX_STRICT_SESSION_SECONDS} s (7 days; 8 hours is the default)."
        )
    return SiteConfig(
        debug=debug,
        secret_key=secret_key or INSECURE_SECRET_KEY,
        allowed_hosts=allowed_hosts,
        static_root=reader.get("DJANGO_STATIC_ROOT", default=Path(base_dir) / "var" / "static"),
        root_urlconf=urlconf,
        email=_email(reader),
        hsts_seconds=hsts_seconds,
        ssl_redirect=reader.get("DJANGO_SECURE_SSL_REDIRECT"),
        # Staff sessions can restore the database: a working day, not Django's two weeks, when strict.
        session_cookie_age=session_cookie_age,
    )


def _check_secret_key(secret_key: str, environment: str) -> None:
    """Refuse what Django's `check --deploy` calls weak: short, few distinct characters, or a known default."""
    if secret_key in ("", INSECURE_SECRET_KEY) or secret_key.startswith("django-insecure"):
        problem = "empty" if not secret_key else "a development default"
    elif len(secret_key) < 50 or len(set(secret_key)) < 5:
        problem = f"too weak ({len(secret_key)} characters, {len(set(secret_key))} distinct; 50 and 5 at least)"
    else:
        return
    raise ImproperlyConfigured(
        f"SECRET_KEY is {problem} with DJANGO_ENV={environment}: "
        'set it to a long random value (python -c "import secrets; print(secrets.token_urlsafe(50))").'
    )

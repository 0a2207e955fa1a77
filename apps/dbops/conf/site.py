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


def site_from_env(
    environ_mapping: Mapping[str, str] | None = None, *, base_dir: Path | str, root_urlconf: str
) -> SiteConfig:
    """Validate the site's SECRET_KEY, DEBUG, ALLOWED_HOSTS, DJANGO_STATIC_ROOT, DJANGO_ROOT_URLCONF and EMAIL_URL."""
    reader = SettingsReader(os.environ if environ_mapping is None else environ_mapping)
    environment = reader.environment()
    strict = environment in STRICT_ENVIRONMENTS

    debug = reader.bool("DEBUG", environment == "development")
    if environment == "production" and debug:
        raise ImproperlyConfigured("DEBUG=true is not allowed when DJANGO_ENV=production: set DEBUG=false.")

    secret_key = reader.raw("SECRET_KEY") or ""
    if strict and secret_key in ("", INSECURE_SECRET_KEY):
        raise ImproperlyConfigured(
            f"SECRET_KEY is {'empty' if not secret_key else 'the development default'} with DJANGO_ENV={environment}: "
            'set it to a long random value (python -c "import secrets; print(secrets.token_urlsafe(50))").'
        )

    allowed_hosts = reader.list("ALLOWED_HOSTS", () if strict else ("localhost", "127.0.0.1", "[::1]", "testserver"))
    if strict and not allowed_hosts:
        raise ImproperlyConfigured(
            f"ALLOWED_HOSTS is empty with DJANGO_ENV={environment}: set it to the site's host names, comma-separated."
        )
    return SiteConfig(
        debug=debug,
        secret_key=secret_key or INSECURE_SECRET_KEY,
        allowed_hosts=allowed_hosts,
        static_root=reader.path("DJANGO_STATIC_ROOT", Path(base_dir) / "var" / "static"),
        root_urlconf=reader.str("DJANGO_ROOT_URLCONF", root_urlconf),
        email=_email(reader),
    )

"""Database entries: URLs parsed and checked with one masked line per problem, and PostgreSQL enforcement."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from dbops.conf.masking import credentials_need_encoding, encoding_hint, mask_url

POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql", "postgis")
DJANGO_POSTGRES_ENGINE = "django.db.backends.postgresql"
# Django's PostgreSQL backend whose pool discards dead connections (dbops.database.postgresql): it replaces
# Django's own engine; an explicitly chosen other engine (a PostgreSQL subclass) is kept as it is.
DBOPS_POSTGRES_ENGINE = "dbops.database.postgresql"
TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")


def parse_database_url(url: str, *, variable: str = "DATABASE_URL") -> dict[str, Any]:
    """Parse a database URL into a `DATABASES` entry, turning each of django-environ's silent failures into a line."""
    masked = mask_url(url)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in environ.Env.DB_SCHEMES:
        raise ImproperlyConfigured(
            f"{variable}={masked!r} has no supported scheme: use postgres://USER:PASSWORD@HOST:PORT/NAME."
        )
    if credentials_need_encoding(url):
        raise ImproperlyConfigured(encoding_hint(variable, url))
    try:
        query_keys = {key.lower() for key, _ in parse_qsl(urlsplit(url).query)}
    except ValueError:  # e.g. an unterminated IPv6 host: the message would quote the URL
        raise ImproperlyConfigured(
            f"{variable}={masked!r} cannot be parsed (check the host, the port number and any % escapes)."
        ) from None
    if "pool" in query_keys:
        raise ImproperlyConfigured(
            f"{variable}={masked!r} sets ?pool=: remove it; the pool is configured by the DATABASE_POOL_* variables."
        )
    try:
        parsed = environ.Env.db_url_config(url)
    except (ValueError, TypeError):
        # The original exception text can quote the URL, password included: drop it.
        raise ImproperlyConfigured(
            f"{variable}={masked!r} cannot be parsed (check the host, the port number and any % escapes)."
        ) from None
    if scheme in POSTGRES_SCHEMES and not parsed.get("NAME"):
        raise ImproperlyConfigured(f"{variable}={masked!r} names no database: add /DBNAME after the host.")
    _check_hosts(parsed, masked, variable)
    return parsed


def _check_hosts(parsed: dict[str, Any], masked: str, variable: str) -> None:
    """Validate libpq's multi-host form (h1:5432,h2:5432): as many ports as hosts, or one for all."""
    hosts = [h for h in str(parsed.get("HOST") or "").split(",")]
    ports = [p for p in str(parsed.get("PORT") or "").split(",") if p != ""]
    if len(hosts) > 1 and any(not h or (":" in h and not h.startswith("[")) for h in hosts):
        raise ImproperlyConfigured(f"{variable}={masked!r} has an empty or malformed host in its host list.")
    if len(ports) not in (0, 1, len(hosts)) or not all(p.isdigit() and 0 < int(p) < 65536 for p in ports):
        raise ImproperlyConfigured(
            f"{variable}={masked!r}: give one port per host (h1:5432,h2:5432) or none, each 1-65535."
        )
    attrs = (parsed.get("OPTIONS") or {}).get("target_session_attrs")
    if attrs is not None and attrs not in TARGET_SESSION_ATTRS:
        raise ImproperlyConfigured(
            f"{variable}={masked!r}: target_session_attrs={attrs!r} is not one of {', '.join(TARGET_SESSION_ATTRS)}."
        )


def is_postgresql_url(url: str) -> bool:
    """Tell whether a database URL names PostgreSQL."""
    return (url.partition("://")[0].lower() if "://" in url else "") in POSTGRES_SCHEMES


def describe_entry(entry: Mapping[str, Any]) -> str:
    """Name a `DATABASES` entry the way a masked URL would: engine://user:***@host:port/name, never the password."""
    engine = str(entry.get("ENGINE", "")).rsplit(".", 1)[-1] or "unknown"
    user = entry.get("USER") or ""
    credentials = f"{user}:***@" if entry.get("PASSWORD") else f"{user}@" if user else ""
    port = f":{entry['PORT']}" if entry.get("PORT") else ""
    return f"{engine}://{credentials}{entry.get('HOST') or ''}{port}/{entry.get('NAME') or ''}"


def _backend_wrapper_class(engine: str) -> type | None:
    try:
        return import_module(f"{engine}.base").DatabaseWrapper
    except (ImportError, AttributeError, ImproperlyConfigured):  # e.g. the MySQL backend without mysqlclient
        return None


def is_postgresql_engine(engine: str) -> bool:
    """Tell whether a Django database engine is PostgreSQL's (Django's own or a subclass of it)."""
    from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper

    wrapper = _backend_wrapper_class(engine)
    return wrapper is not None and issubclass(wrapper, PostgresWrapper)


def enforce_postgresql(database: Mapping[str, Any], *, required_by: str, variable: str = "DATABASE_URL") -> None:
    """Refuse a `DATABASES` entry that is not PostgreSQL through psycopg 3 with Django's native pool."""
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    engine = database.get("ENGINE", "")
    if not is_postgresql_engine(engine):
        raise ImproperlyConfigured(
            f"{variable} uses engine {engine!r}, but {required_by} requires PostgreSQL with pooling: "
            "set it to postgres://USER:PASSWORD@HOST:PORT/NAME."
        )
    if not is_psycopg3:
        raise ImproperlyConfigured(
            f"{required_by} requires psycopg 3 for pooling, but psycopg2 is in use: pip install 'psycopg[binary,pool]'."
        )
    if not (database.get("OPTIONS") or {}).get("pool"):
        raise ImproperlyConfigured(
            f"DATABASE_POOL_ENABLED is off, but {required_by} requires PostgreSQL with Django's native pool: "
            "remove DATABASE_POOL_ENABLED=false."
        )
    if database.get("CONN_MAX_AGE", 0) != 0:
        raise ImproperlyConfigured("CONN_MAX_AGE must be 0 with Django's native pool: the pool manages connections.")

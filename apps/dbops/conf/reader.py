"""Typed reads of dbops' settings, by the one table of them (`dbops.conf.variables`), and cache URLs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from dbops.conf.config import (
    ENVIRONMENT_ALIASES,
    ENVIRONMENTS,
)
from dbops.conf.masking import credentials_need_encoding, encoding_hint, mask_url
from dbops.conf.variables import DYNAMIC, VARIABLES, Variable

_TRUE = ("1", "true", "yes", "on")


_FALSE = ("0", "false", "no", "off")
_UNSET: Any = object()


def _parse_int(text: str) -> int:
    return int(environ.Env.parse_value(text, int))


class SettingsReader:
    """Typed reads of one mapping (the environment, or a settings dict) by the table in `dbops.conf.variables`.

    Values are cast with django-environ's `Env.parse_value`; what it would quietly accept (a bool of "maybe", an
    integer below its minimum) is refused here in one line that names the variable and the fix.
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def raw(self, name: str) -> str | None:
        """Return the value as text (None when unset or blank); Python values are written as the environment would."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | tuple):
            value = ",".join(str(item) for item in value)
        elif isinstance(value, dict):
            value = json.dumps(value)
        value = str(value).strip()
        return value or None

    def get(self, name: str, *, default: Any = _UNSET) -> Any:
        """Return `name` read as its table entry says (type, minimum); `default` only for a DYNAMIC default."""
        variable = VARIABLES[name]
        fallback = variable.default if default is _UNSET else default
        if fallback is DYNAMIC:
            raise LookupError(f"{name}'s default depends on other settings: pass default=")
        value = self.raw(name)
        if variable.kind == "json":
            return self.suppressions(name)
        if value is None:
            return fallback
        return getattr(self, f"_as_{variable.kind}")(name, value, variable)

    def _as_text(self, name: str, value: str, variable: Variable) -> str:
        return value

    def _as_path(self, name: str, value: str, variable: Variable) -> Path:
        return Path(value)

    def _as_list(self, name: str, value: str, variable: Variable) -> tuple[str, ...]:
        return tuple(item.strip() for item in environ.Env.parse_value(value, list) if item.strip())

    def _as_bool(self, name: str, value: str, variable: Variable) -> bool:
        if value.lower() not in (*_TRUE, *_FALSE):
            raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: set it to true or false.")
        return bool(environ.Env.parse_value(value.lower(), bool))

    def _as_float(self, name: str, value: str, variable: Variable) -> float:
        # Not Env.parse_value: for floats it strips every character but digits, "." and "-" ("0.5s" passed as 0.5).
        return self._as_number(name, value, variable, float, "a number")

    def _as_int(self, name: str, value: str, variable: Variable) -> int:
        return self._as_number(
            name, value, variable, lambda text: int(environ.Env.parse_value(text, int)), "an integer"
        )

    @staticmethod
    def _as_number(name: str, value: str, variable: Variable, cast, kind: str):
        """Cast `value`; refuse in one line what is not a number of the kind, or is below the minimum (nan too)."""
        minimum, unit = variable.minimum, variable.unit
        try:
            number = cast(value)
        except ValueError:
            whole = "a whole number" if kind == "an integer" else "a number"
            raise ImproperlyConfigured(
                f"{name}={value!r} is not {whole}: set it to {kind} >= {minimum}{unit}."
            ) from None
        if not number >= minimum:
            problem = "negative" if number < 0 else "zero" if number == 0 else f"below {minimum}"
            raise ImproperlyConfigured(f"{name}={number} is {problem}: set it to {kind} >= {minimum}{unit}.")
        return number

    def suppressions(self, name: str) -> dict[str, dict[str, str]]:
        """Read `{"app.migration": {"CODE": "reason"}}`: every suppression must give a reason."""
        value = self.raw(name)
        if value is None:
            return {}
        example = '{"shop.0007_order_index": {"M005": "built off-hours on 2026-01-05"}}'
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name} is not valid JSON: set it like {example}.") from None
        if not isinstance(parsed, dict):
            raise ImproperlyConfigured(f"{name} must be a JSON object: set it like {example}.")
        for migration, rules in parsed.items():
            if "." not in migration or not isinstance(rules, dict):
                raise ImproperlyConfigured(
                    f'{name}: {migration!r} must be "app_label.migration_name" mapping rule codes to reasons, '
                    f"like {example}."
                )
            for code, reason in rules.items():
                if not isinstance(reason, str) or not reason.strip():
                    raise ImproperlyConfigured(
                        f"{name}: {migration} {code} has no reason: every suppression must say why it is safe."
                    )
        return {
            migration: {code: reason.strip() for code, reason in rules.items()} for migration, rules in parsed.items()
        }

    def environment(self) -> str:
        given = self.values.get("DJANGO_ENV")
        if isinstance(given, str) and not given.strip():
            # An empty value would mean development (a local database, DEBUG) beside a production DATABASE_URL.
            raise ImproperlyConfigured(
                f"DJANGO_ENV is set but empty: set it to one of {', '.join(ENVIRONMENTS)} "
                "(or unset it for development)."
            )
        value = self.get("DJANGO_ENV").lower()
        value = ENVIRONMENT_ALIASES.get(value, value)
        if value not in ENVIRONMENTS:
            raise ImproperlyConfigured(
                f"DJANGO_ENV={value!r} is not a known environment: use one of {', '.join(ENVIRONMENTS)} (or prod)."
            )
        return value


def parse_cache_url(url: str, *, variable: str = "CACHE_URL") -> dict[str, Any]:
    """Build a `CACHES` entry: locmem:// or redis(s)://; Redis gets short timeouts (a cache must never hang)."""
    if credentials_need_encoding(url):
        raise ImproperlyConfigured(encoding_hint(variable, url))
    scheme = url.partition("://")[0].lower()
    if scheme == "locmem":
        return {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": url.partition("://")[2] or "dbops",
        }
    if scheme in ("redis", "rediss"):
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    raise ImproperlyConfigured(f"{variable}={mask_url(url)!r} is not supported: use locmem:// or redis://HOST:PORT/DB.")

"""Credentials never leave a URL: masking for every message, repr and report that names one."""

from __future__ import annotations

import re


def mask_url(url: str) -> str:
    """Return `url` with any password replaced by `***`, whatever characters the password holds.

    URL parsers stop at the first `/`, `#` or `?` of an unencoded password and so leave the rest of it in view.
    A host never holds an `@`: everything between `://` and the last `@` is the user and password.
    """
    scheme, separator, rest = url.partition("://")
    if separator:
        credentials, at, location = rest.rpartition("@")
        if at:
            user, colon, _password = credentials.partition(":")
            rest = f"{user}:***@{location}" if colon else f"{user}@{location}"
        url = f"{scheme}{separator}{rest}"
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)


def credentials_need_encoding(url: str) -> bool:
    """Tell whether the user or password holds `/`, `?` or `#` unencoded.

    Parsers would read part of it as host, port or path, and print it wherever those are printed.
    """
    _scheme, separator, rest = url.partition("://")
    credentials, at, _location = rest.rpartition("@")
    return bool(separator and at and any(char in credentials for char in "/?#"))


def encoding_hint(variable: str, url: str) -> str:
    """Return the one-line error for a URL whose credentials need percent-encoding."""
    return (
        f"{variable}={mask_url(url)!r}: the user or password holds '/', '?' or '#' unencoded: percent-encode it "
        "(python -c \"import urllib.parse, getpass; print(urllib.parse.quote(getpass.getpass(), safe=''))\")."
    )

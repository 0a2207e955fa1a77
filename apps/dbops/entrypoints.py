"""Process entry points (manage.py, WSGI, ASGI) share this: bad settings print one line, not a traceback."""

import sys

from django.core.exceptions import ImproperlyConfigured


def load_settings_or_exit() -> None:
    """Load Django settings now; on `ImproperlyConfigured` print one line to stderr and exit 1."""
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - forces the settings module to load
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"ImproperlyConfigured: {exc}\n")
        raise SystemExit(1) from None

"""Process entry points: bad settings print one line (`ImproperlyConfigured: ...`) and exit 1, not a traceback.

A site uses them in place of Django's own in manage.py, wsgi.py and asgi.py (docs/adopting.md):
`from dbops.entrypoints import execute_from_command_line` (likewise `get_wsgi_application`, `get_asgi_application`).
"""

from __future__ import annotations

import sys

from django.core.exceptions import ImproperlyConfigured


def load_settings_or_exit() -> None:
    """Load Django settings and the apps now; on `ImproperlyConfigured` print one line to stderr and exit 1."""
    import django
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - forces the settings module to load
        django.setup()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"ImproperlyConfigured: {exc}\n")
        raise SystemExit(1) from None


# Commands that serve or load-test need the pool as configured; every other command gets a small one.
SERVING_COMMANDS = ("runserver", "testserver", "loadtest")
# Django's commands that need the database at once (dbops' own say so themselves, exit 3): with the project-local
# cluster stopped they printed a pool-timeout traceback (migrate) or a pool warning every few seconds (runserver).
DATABASE_COMMANDS = ("runserver", "migrate", "createsuperuser", "dbshell", "loaddata", "dumpdata", "flush")


def refuse_stopped_local_cluster() -> None:
    """Exit 3 with one line when the site runs on the project-local cluster (DBOPS_LOCALDB) and it is not running."""
    from dbops.conf import get_config
    from dbops.localdb import accepts_connections

    config = get_config()
    if config.database_url_from_env or config.localdb is None or config.is_strict:
        return
    if not accepts_connections(config.localdb.port):
        sys.stderr.write(
            f"The project-local PostgreSQL cluster is not running (127.0.0.1:{config.localdb.port}): start it with "
            "`manage.py localdb start`, or set DATABASE_URL.\n"
        )
        raise SystemExit(3)


def execute_from_command_line(argv: list[str] | None = None) -> None:
    """Run a management command like Django's own, with the one-line settings error and a command-sized pool."""
    from django.core import management
    from django.db import connections

    from dbops.database.pool import use_command_pool

    argv = argv or sys.argv
    load_settings_or_exit()
    if len(argv) > 1 and argv[1] in DATABASE_COMMANDS:
        refuse_stopped_local_cluster()
    if len(argv) > 1 and argv[1] not in SERVING_COMMANDS:
        for alias in connections:
            use_command_pool(alias)
    management.execute_from_command_line(argv)


def get_wsgi_application():
    """Return Django's WSGI application once the settings loaded, or stop the worker with one line."""
    from django.core.wsgi import get_wsgi_application as django_wsgi_application

    load_settings_or_exit()
    return django_wsgi_application()


def get_asgi_application():
    """Return Django's ASGI application once the settings loaded, or stop the server with one line."""
    from django.core.asgi import get_asgi_application as django_asgi_application

    load_settings_or_exit()
    return django_asgi_application()

"""The shell every dbops command that needs its database shares: one line and exit 3 when it is unreachable."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from dbops.backups.failures import storage_failure
from dbops.breaker.outages import is_database_outage
from dbops.conf import get_config
from dbops.database.pool import mark_command_process, require_reachable, unreachable_message
from dbops.exceptions import DatabaseUnreachable

# Something failed before any judgement (a storage that cannot be used, a missing key).
EXIT_ERROR = 2
EXIT_DATABASE_UNREACHABLE = 3
# The record named (a backup, an alert) does not exist: nothing was tried.
EXIT_NOT_FOUND = 4


def record_id(value: str) -> int:
    """Argparse type for a record id: a whole number >= 1 (0 or -1 would silently mean "the newest")."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a record id (a whole number >= 1)") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not a record id (a whole number >= 1)")
    return number


class DatabaseCommand(BaseCommand):
    """Fail within the connect timeout with one line naming the alias, host:port and the fix (exit 3).

    From the shell the database is tried once outside the pool before any work (no pool warnings, no 5 s pool
    timeout); a database that goes away mid-command ends the same way instead of in a traceback.
    """

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = (
            f"Exit {EXIT_ERROR}: an error before any judgement (the backup storage down or untrusted: one line); "
            f"exit {EXIT_DATABASE_UNREACHABLE}: the database is unreachable (one line says which and how to fix); "
            f"exit {EXIT_NOT_FOUND}: no such record (nothing was tried)."
        )
        return parser

    def run_from_argv(self, argv):
        mark_command_process()
        self._preflight = True
        return super().run_from_argv(argv)

    def execute(self, *args, **options):
        alias = options.get("database") or options.get("alias") or DEFAULT_DB_ALIAS
        try:
            if getattr(self, "_preflight", False):
                require_reachable(alias, timeout=float(get_config().database.connect_timeout))
            return super().execute(*args, **options)
        except DatabaseUnreachable as exc:
            raise CommandError(str(exc), returncode=EXIT_DATABASE_UNREACHABLE) from None
        except CommandError:
            raise
        except Exception as exc:
            if is_database_outage(exc):
                raise CommandError(unreachable_message(alias, exc), returncode=EXIT_DATABASE_UNREACHABLE) from None
            failure = storage_failure(exc)
            if failure is not None:  # the store is down, frozen or untrusted: an error, not a finding
                raise CommandError(failure, returncode=EXIT_ERROR) from None
            raise

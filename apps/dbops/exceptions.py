"""dbops' own errors. Commands turn them into `CommandError`; each message is one line and holds no secret."""


class DbopsError(Exception):
    """Base class for failures a user can act on."""


class DatabaseUnreachable(DbopsError):
    """The database of an alias cannot be reached: the message names the alias, host:port and the fix."""


class LocalDbError(DbopsError):
    """The project-local PostgreSQL cluster cannot be created, started or reached."""


class BackupError(DbopsError):
    """A backup could not be taken, verified, restored or pruned."""


class BackupInProgress(BackupError):
    """Another backup of the same database holds the advisory lock."""


class BackupKeyError(BackupError):
    """An encrypted backup cannot be read: no identity, an unreadable one, or one it was not encrypted to."""


class VerificationFailed(BackupError):
    """A backup file does not prove restorable: checksum, restore or row counts disagree."""


class VerificationNotPossible(BackupError):
    """Verification could not run (for example the role may not create the scratch database); nothing was judged."""


class RestoreRefused(BackupError):
    """A restore was refused before it touched the live database."""


class MigrationError(DbopsError):
    """A guarded migrate or rollback could not run or did not finish; `outcome` holds what was planned."""

    def __init__(self, message: str, outcome=None) -> None:
        super().__init__(message)
        self.outcome = outcome


class MigrationSelectionError(MigrationError):
    """The app or migration named does not exist, or the target does not fit the command."""


class MigrationRefused(MigrationError):
    """Refused before touching the schema: block findings, an irreversible step, or another run holds the lock."""


class MigrationFailed(MigrationError):
    """A migration failed while running; the message says where the database stopped."""

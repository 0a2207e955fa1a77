"""dbops' own errors. Commands turn them into `CommandError`; each message is one line and holds no secret."""


class DbopsError(Exception):
    """Base class for failures a user can act on."""


class LocalDbError(DbopsError):
    """The project-local PostgreSQL cluster cannot be created, started or reached."""


class BackupError(DbopsError):
    """A backup could not be taken, verified, restored or pruned."""


class BackupInProgress(BackupError):
    """Another backup of the same database holds the advisory lock."""


class VerificationFailed(BackupError):
    """A backup file does not prove restorable: checksum, restore or row counts disagree."""


class RestoreRefused(BackupError):
    """A restore was refused before it touched the live database."""

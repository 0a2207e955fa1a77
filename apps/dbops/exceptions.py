"""dbops' own errors. Commands turn them into `CommandError`; each message is one line and holds no secret."""


class DbopsError(Exception):
    """Base class for failures a user can act on."""


class LocalDbError(DbopsError):
    """The project-local PostgreSQL cluster cannot be created, started or reached."""

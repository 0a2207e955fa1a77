"""Point-in-time recovery driven through pgBackRest (an existing engine: dbops configures, checks and records it).

pgBackRest runs on the database host as the server's OS user: full/diff/incr backups, WAL archiving
(`archive_command` = `pgbackrest ... archive-push %p`), `verify`, `info --output=json` and
`restore --type=time`. dbops writes its configuration file, tells exactly which server settings are missing,
computes the recoverable window from the repository alone (the oldest backup's end .. the newest archived
commit), refuses a restore outside it, and records every run (`PitrRun`). Managed databases (RDS, Cloud SQL,
Azure) do PITR themselves: dbops detects their host names and says so.

Modules: `target` (what PITR works on), `ini` (pgbackrest.conf), `pgbackrest` (running it), `setup` (setup-check and
the maintenance grants), `window` (status and the recoverable window), `runs` (records, backup, verify, journal),
`restore`.
"""

from __future__ import annotations

from dbops.backups.pitr.restore import restore, server_running
from dbops.backups.pitr.runs import BACKUP_TYPES, JOURNAL_NAME, backup, reap_interrupted_runs, record_journal, verify
from dbops.backups.pitr.setup import SetupLine, maintenance_grants, setup_check
from dbops.backups.pitr.target import PitrError, PitrRefused, PitrTarget, managed_provider
from dbops.backups.pitr.window import last_archived_commit, status, window_summary

__all__ = [
    "BACKUP_TYPES",
    "JOURNAL_NAME",
    "PitrError",
    "PitrRefused",
    "PitrTarget",
    "SetupLine",
    "backup",
    "last_archived_commit",
    "maintenance_grants",
    "managed_provider",
    "reap_interrupted_runs",
    "record_journal",
    "restore",
    "server_running",
    "setup_check",
    "status",
    "verify",
    "window_summary",
]

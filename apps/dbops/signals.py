"""Signals other parts of a site (and the alerting service) can listen to."""

from django.dispatch import Signal

# Sent by the process that makes a circuit-breaker transition: old, new (breaker.State), reason (str).
breaker_transition = Signal()

# Sent when a backup run ends (record: BackupRecord, succeeded or failed) and when a verification ends.
backup_finished = Signal()

# Sent when a guarded migrate or rollback ends (run: MigrationRun, any final status).
migration_run_finished = Signal()

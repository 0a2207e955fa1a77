"""Backups: logical dumps made verifiable, and point-in-time recovery through pgBackRest.

- `logical`: take (django-dbbackup's PostgreSQL connector), verify in a scratch database, restore with a safety
  backup, prune by retention; `BackupRecord`/`RestoreRecord` history.
- `pitr`: pgBackRest set-up check, physical backups, the recoverable window, verify, restore to a time.
"""

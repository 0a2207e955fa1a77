"""Migration safety (not `migrations/`, which Django owns): analysis before, guarded runs during, status after.

- `analysis`: every pending operation against the rules, graded by the live size of its table.
- `rules`: the rules M001-M022; `facts`: live table sizes, validated checks, volatile functions.
- `runner`: guarded apply/rollback around Django's migrate (lock/statement timeouts, backup, `MigrationRun`).
- `status`: which migrations exist on disk and which a database has applied.
"""

"""Migration safety (not `migrations/`, which Django owns): analysis before, guarded runs during, status after.

- `analysis`: every pending operation against the rules, graded by the live size of its table.
- `rules`: the rules M001-M025 (`catalog`: their codes and texts; `context`: what a rule sees and how it grades;
  `dispatch`: which rules an operation gets, or the SQL it emits; `columns`, `emitted`, `runpython`: what Django's
  schema editor and a RunPython's code will do); `sql`: raw SQL classified with PostgreSQL's parser (pglast);
  `facts`: live table sizes, validated checks, volatile functions, index owners.
- `rewrites`: the safe form of a migration's mechanical findings, as migration code for review.
- `runner`: guarded apply/rollback around Django's migrate (lock/statement timeouts, backup, `MigrationRun`).
- `status`: which migrations exist on disk and which a database has applied.
"""

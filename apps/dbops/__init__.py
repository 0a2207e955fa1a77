"""dbops: production-grade database operations for Django on PostgreSQL (distribution: django-dbops).

Each capability has one home: `conf` (settings -> typed config, enforcement), `database` (pool and server
selectors), `health` (django-health-check checks and status reports), `breaker`, `monitoring`, `alerting`,
`backups` (logical and PITR), `migrations_safety`, `replication`, `dashboard`; `localdb`, `loadtest` and
`selftest` are single services. Commands, admin, views and middleware are thin shells over them, and imports run
one way: shells -> services -> ORM/psycopg. Adopting it in a site: docs/adopting.md.
"""

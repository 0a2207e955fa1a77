"""Database insights: the slow-building problems that take PostgreSQL sites down, tied to the Django models.

What PgHero and check_postgres see, read from the catalog and the statistics views through a probe connection
with a statement timeout (never the request pool's queue), each finding with a stable code, a level, the object,
the Django model and field behind it when one maps, a message and the fix:

- I001 transaction ID (and MultiXact) age of the database and its oldest tables
- I002 sequence or identity near the maximum of the column it feeds (AutoField -> BigAutoField)
- I003 INVALID index (a failed CREATE INDEX CONCURRENTLY)
- I004 duplicate index, or a btree covered by another's leading columns
- I005 unused index (no scan since the statistics reset, never one backing a constraint)
- I006 foreign key without an index on its columns, on a table above a size
- I007 autovacuum falling behind (dead tuples)
- I008 replication slot inactive or holding WAL
- I009 top statements by total time from pg_stat_statements (or how to enable it)
- I010 cache hit ratio below a set ratio
- I011 an index for a top statement that hypopg proves the planner would use

`checks` holds the queries (`findings` their shape, `statements` pg_stat_statements, `advice` I011), `models` maps
tables and columns to Django models, `service` runs them, `shared` keeps the latest report in the cache for
health, `metrics`, alerts and the dashboard; `fixes` (and `widening` for I002) write the fixes as migrations.
`manage.py db_insights [--json]` and the admin page are the shells. Thresholds: `DBOPS_INSIGHTS_*`.
"""

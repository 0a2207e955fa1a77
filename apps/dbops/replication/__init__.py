"""Replicas and PgBouncer: lag-aware read routing with read-your-writes, and PgBouncer's admin console.

- `router`: `ReplicaRouter` (DATABASE_ROUTERS) and the per-request read-your-writes scope; `middleware` sets it.
- `pgbouncer`: SHOW POOLS / SHOW STATS for health.
"""

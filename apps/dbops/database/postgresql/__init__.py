"""dbops' database engine: Django's PostgreSQL backend whose pool never hands out a connection that died.

Set as ENGINE by `dbops.conf` where the site uses Django's own PostgreSQL engine with the pool.
"""

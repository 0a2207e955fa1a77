"""Settings for bench/throughput.py: the project's, with the connection strategy BENCH_CONNECTION_MODE picks.

pool        Django's native psycopg pool (the project's configuration, unchanged)
new         no pool, CONN_MAX_AGE=0: a new connection per request
persistent  no pool, CONN_MAX_AGE=600: one persistent connection per thread
django-pool Django's own PostgreSQL backend with its native pool
Only the benchmark bypasses enforcement this way; the project itself refuses a pool-less production set-up.
"""

import os

from project.settings import *  # noqa: F403 - extend the project's settings
from project.settings import DATABASES

MODE = os.environ.get("BENCH_CONNECTION_MODE", "pool")
if MODE == "django-pool":  # Django's own backend and pool, without dbops' checkout work (bench/pool_overhead.py)
    DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
elif MODE != "pool":
    DATABASES["default"]["OPTIONS"].pop("pool", None)
    DATABASES["default"]["CONN_MAX_AGE"] = {"new": 0, "persistent": 600}[MODE]

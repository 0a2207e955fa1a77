"""Real parts the system tests and the benchmarks share: gunicorn, load, the S3 server, a Patroni cluster.

They live with the tests (the benchmarks import them from here), so no test depends on bench/.
"""

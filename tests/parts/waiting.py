"""Helpers of the HA tests: SQL on a given cluster, and waiting for replication to do something."""

from __future__ import annotations

import time

import psycopg

from dbops.localdb import LocalCluster


def sql(cluster: LocalCluster, statement: str, params=None, dbname: str = "postgres"):
    with psycopg.connect(cluster.url(dbname), autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def wait_for(predicate, timeout: float = 30.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)

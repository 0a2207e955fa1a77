"""Real replication for the HA tests: a standby of a cluster, on a free port, removed afterwards."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
import time
from pathlib import Path

import psycopg

from apps.dbops.localdb import LocalCluster, find_bindir, free_port


def _owned_root(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    return root


@contextlib.contextmanager
def standby_of(primary: LocalCluster):
    """Yield a started streaming standby of `primary` (hot standby, asynchronous unless the primary says not)."""
    root = _owned_root("dbops-standby-")
    standby = LocalCluster(data_dir=root / "data", port=free_port(), bindir=find_bindir())
    try:
        standby.replicate_from(primary)
        standby.start()
        yield standby
    finally:
        standby.destroy()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def primary_cluster():
    """Yield a started throwaway cluster to replicate from."""
    root = _owned_root("dbops-primary-")
    primary = LocalCluster(data_dir=root / "data", port=free_port(), bindir=find_bindir())
    try:
        primary.init(durable=False)
        primary.start()
        yield primary
    finally:
        primary.destroy()
        shutil.rmtree(root, ignore_errors=True)


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

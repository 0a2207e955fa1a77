"""Start a throwaway PostgreSQL cluster before pytest-django reads the settings.

Loaded with `-p` (setup.cfg) so its hook wraps pytest-django's settings set-up. `TEST_DATABASE_URL` points the
suite at an existing server instead; `DATABASE_URL` is deliberately ignored so that a shell pointing at a real
database never runs the suite there.
"""

from __future__ import annotations

import os

import pytest

from dbops.localdb import LocalCluster, throwaway_cluster

_state: dict[str, object] = {}

TEST_ENVIRONMENT = {
    "DJANGO_ENV": "test",
    # Small pool: tests that fill it stay quick. Tests of the seed defaults call dbops.conf.from_env() directly.
    "DATABASE_POOL_SIZE": "2",
    "DATABASE_POOL_MAX_OVERFLOW": "4",
    "DATABASE_POOL_TIMEOUT": "2",
    # Breaker transitions and backups raise alerts from background threads; the alert tests turn this on.
    "DBOPS_ALERT_EVENTS": "false",
}


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    for name, value in TEST_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        os.environ["DATABASE_URL"] = external
    else:
        manager = throwaway_cluster(os.environ.get("PG_BINDIR"))
        cluster = manager.__enter__()
        _state["manager"] = manager
        _state["cluster"] = cluster
        os.environ["DATABASE_URL"] = cluster.url("dbops")
    return (yield)


def pytest_unconfigure(config):
    manager = _state.pop("manager", None)
    if manager is not None:
        manager.__exit__(None, None, None)


def owned_cluster() -> LocalCluster | None:
    """Return the cluster this run started (None when the suite runs against TEST_DATABASE_URL)."""
    return _state.get("cluster")  # type: ignore[return-value]

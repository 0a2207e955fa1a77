"""Shared benchmark set-up: a real PostgreSQL (throwaway cluster or BENCH_DATABASE_URL), Django, statistics.

Benchmarks print ratios measured side by side in one run: on a noisy 2-core machine absolute times drift,
ratios of interleaved rounds do not.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from dbops.monitoring.window import percentile  # noqa: E402 - needs the project on sys.path
from tests.parts.servers import server_environ  # noqa: E402

__all__ = ["percentile", "server_environ"]


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="A seconds-long run that only proves the benchmark works.")
    p.add_argument("--rounds", type=int, default=8, help="Interleaved rounds per condition (medians are quoted).")
    return p


@contextlib.contextmanager
def postgres(**environ: str) -> Iterator[str]:
    """Yield a database URL: BENCH_DATABASE_URL, or a throwaway cluster's (deleted afterwards)."""
    with postgres_cluster(**environ) as (url, _cluster):
        yield url


@contextlib.contextmanager
def postgres_cluster(**environ: str):
    """Yield (url, cluster); cluster is None with BENCH_DATABASE_URL (benchmarks that stop it need their own)."""
    os.environ.update({"DJANGO_ENV": "test", **environ})
    given = os.environ.get("BENCH_DATABASE_URL")
    if given:
        os.environ["DATABASE_URL"] = given
        yield given, None
        return
    from dbops.localdb import throwaway_cluster

    with throwaway_cluster() as cluster:
        cluster.ensure_database("bench")
        os.environ["DATABASE_URL"] = cluster.url("bench")
        yield os.environ["DATABASE_URL"], cluster


def setup_django(migrate: bool = True) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.db import connections

        connections.close_all()  # give the pool its connection back


def median(values: list[float]) -> float:
    return statistics.median(values)

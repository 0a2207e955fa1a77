"""Test tiers: every test says what it needs, and the collection refuses one that does not.

- `pure`: Python only. No database (pytest-django refuses it) and no other process.
- `database`: the throwaway cluster through Django and its real pool; still no other process.
- `system`: real servers, clusters, subprocesses, the browser, faults (stopping the server, full disks).
- `smoke`: a system test that also runs on the second Django target (`make test-django6`).

`make test-fast` runs pure + database (`pytest --tier pure --tier database`); `make test` runs everything. Select
with `--tier`, not `-m`: `-m database` would also pick a system test in a module whose default tier is database.
A pure or database test that starts a process fails: the tier is a promise about cost, and a process is where the
cost is.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

TIERS = ("pure", "database", "system")


def tier_of(item: pytest.Item) -> str | None:
    """Return the nearest tier marker (a test's own overrides its module's), or None."""
    for marker in item.iter_markers():
        if marker.name in TIERS:
            return marker.name
    return None


def check_tiers(items: list[pytest.Item]) -> None:
    """Refuse a collection with a test that has no tier, or a pure test that asks for the database."""
    problems = []
    for item in items:
        tier = tier_of(item)
        if tier is None:
            problems.append(f"{item.nodeid}: no tier marker (pure, database or system: see tests/tiers.py)")
        elif tier == "pure" and item.get_closest_marker("django_db") is not None:
            problems.append(f"{item.nodeid}: marked pure but uses the database (mark it database)")
    if problems:
        raise pytest.UsageError("\n".join(problems))


def add_tier_option(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        action="append",
        choices=(*TIERS, "smoke"),
        help="run only this tier (repeatable); smoke adds the system tests marked smoke",
    )


def select_tiers(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the items of the `--tier` options (all when none is given), by each test's nearest tier."""
    wanted = config.getoption("tier") or []
    if not wanted:
        return
    selected, deselected = [], []
    for item in items:
        keep = tier_of(item) in wanted or ("smoke" in wanted and item.get_closest_marker("smoke") is not None)
        (selected if keep else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


class ProcessStarted(AssertionError):
    """A pure or database test started a process: it belongs to the system tier."""


def forbid_processes(monkeypatch: pytest.MonkeyPatch, tier: str) -> None:
    """Make starting a process fail in this test (pure and database tiers)."""

    def refuse(self, args, *rest, **kwargs):
        raise ProcessStarted(f"a {tier} test started a process ({args!r}): mark it system")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str, *, how: str, found: bool | None = None) -> None:
    """Skip a test whose tool is missing on a developer's machine; fail it in CI, where `make test` installs it.

    A skipped PITR or Patroni test in CI would be a green run that proved nothing about PITR or Patroni.
    """
    present = shutil.which(name) is not None if found is None else found
    if present:
        return
    message = f"{name} is not installed ({how})"
    if in_ci():
        pytest.fail(f"{message}: CI must run every tier", pytrace=False)
    pytest.skip(message)

"""Health reads the PITR window through a short per-process cache: pgBackRest and pg_waldump are not free."""

from __future__ import annotations

import types

import pytest

from dbops.backups.pitr import window
from dbops.backups.pitr.target import PitrError

pytestmark = pytest.mark.pure


@pytest.fixture
def counted(monkeypatch):
    calls = []
    outcomes = iter([{"backups": ["b1"]}, PitrError("the repository cannot be read")])

    def status(target):
        calls.append(target.stanza)
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(window, "status", status)
    window.forget_status()
    yield calls
    window.forget_status()


TARGET = types.SimpleNamespace(stanza="main", repo_location="/var/lib/pgbackrest")


def test_cached_status__reads_once_within_the_interval(counted, monkeypatch):
    assert window.cached_status(TARGET) == {"backups": ["b1"]}
    assert window.cached_status(TARGET) == {"backups": ["b1"]}
    assert counted == ["main"]


def test_cached_status__reads_again_after_the_interval_and_caches_a_failure_too(counted, monkeypatch):
    monkeypatch.setattr(window, "STATUS_CACHE_SECONDS", 0.0)
    window.cached_status(TARGET)
    with pytest.raises(PitrError):
        window.cached_status(TARGET)
    monkeypatch.setattr(window, "STATUS_CACHE_SECONDS", 60.0)
    with pytest.raises(PitrError):  # the failure is remembered: no pgBackRest run per health call
        window.cached_status(TARGET)
    assert counted == ["main", "main"]

"""Every PITR run ends: a backup or verify whose process died is ended once its lock is free, never while held."""

from __future__ import annotations

import pytest
from django.utils import timezone

from dbops.backups.logical.locks import PITR_LOCK_KEY
from dbops.backups.pitr import reap_interrupted_runs
from dbops.models import PitrRun
from tests.conftest import test_database_connection

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def running(kind: str) -> PitrRun:
    return PitrRun.objects.create(kind=kind, started_at=timezone.now(), stanza="main")


def test_reap__a_killed_backups_record_ends_failed_once_nobody_holds_the_lock():
    killed = running(PitrRun.Kind.BACKUP)
    assert reap_interrupted_runs() == 1
    killed.refresh_from_db()
    assert killed.status == PitrRun.Status.FAILED and killed.finished_at is not None
    assert "interrupted" in killed.error


def test_reap__a_run_that_holds_the_lock_is_left_running():
    alive = running(PitrRun.Kind.VERIFY)
    with test_database_connection() as other_process:
        other_process.execute("SELECT pg_advisory_lock(%s)", [PITR_LOCK_KEY])
        assert reap_interrupted_runs() == 0
    alive.refresh_from_db()
    assert alive.status == PitrRun.Status.RUNNING

"""The breaker command is honest about where its state lives and quiet when nothing changes."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from tests.parts.site import manage, url_of_test_database

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


# -- 4: the breaker's status is honest about where its state lives ---------------------------------------------------
def test_breaker_status__shared_store_only_on_a_shared_cache(redis_server):
    environ = {"DATABASE_URL": url_of_test_database()}
    local = manage("breaker", "status", "--json", CACHE_URL="locmem://", **environ)
    assert json.loads(local.stdout)["shared_store"] is False
    shared = manage("breaker", "status", "--json", CACHE_URL=redis_server, **environ)
    assert json.loads(shared.stdout)["shared_store"] is True


@pytest.mark.database
def test_breaker_reset__of_a_closed_breaker_logs_no_transition(caplog):
    with caplog.at_level("INFO", logger="dbops.breaker"):
        call_command("breaker", "reset")
    assert not [r for r in caplog.records if "breaker_transition" in r.getMessage()]

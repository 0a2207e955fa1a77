"""Commands say what happened in one line: a URL nobody answers, a bad value, an unknown id, nothing to do."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests import PROJECT_DIR
from tests.parts.site import manage, url_of_test_database

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


# -- 12: commands say what happened ----------------------------------------------------------------------------------
def test_loadtest__a_url_nobody_answers_is_one_line_before_any_load():
    from dbops.localdb import free_port

    url = f"http://127.0.0.1:{free_port()}/"
    result = manage("loadtest", "--url", url, "--users", "2", "--duration", "1", DATABASE_URL=url_of_test_database())
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"CommandError: {url} does not answer ([Errno 111] Connection refused): start the server, or fix --url"
    ]
    assert "workload None" not in result.stdout and "p95 None" not in result.stdout


def test_loadtest__a_bad_value_is_named():
    result = manage("loadtest", "--users", "-5", DATABASE_URL=url_of_test_database())
    assert result.returncode == 2
    assert result.stderr.strip() == "CommandError: --users -5 is not allowed: it must be >= 1"


def test_alerts_ack__an_id_that_names_no_open_alert_exits_4():
    result = manage("alerts", "ack", "999", DATABASE_URL=url_of_test_database())
    assert result.returncode == 4
    assert result.stderr.strip() == "CommandError: No open alert #999: see manage.py alerts list."
    assert "acknowledged" not in result.stdout


@pytest.mark.database
def test_backup_list__has_column_headers_and_says_when_empty(capsys):
    with pytest.raises(SystemExit):  # exit 1: a backup is due
        call_command("backup_list")
    assert "No backups yet: run manage.py backup" in capsys.readouterr().out
    from tests.factories import BackupRecordFactory

    BackupRecordFactory()
    call_command("backup_list")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("Newest verified backup on local disk: #")
    assert lines[2].split() == ["ID", "STARTED", "(UTC)", "AGE", "STATUS", "TRIGGER", "SIZE", "VERIFICATION"]
    assert lines[3].startswith("#")


@pytest.mark.database
def test_migration_apply__with_nothing_to_do_says_so(capsys):
    call_command("migration_apply", "--no-backup")
    assert capsys.readouterr().out.strip() == "Nothing to do: every migration is applied."


@pytest.mark.database
def test_pitr_settings__every_problem_in_one_line():
    from django.core.exceptions import ImproperlyConfigured

    from dbops.conf import from_env

    with pytest.raises(ImproperlyConfigured) as refused:
        from_env(
            {
                "DJANGO_ENV": "test",
                "DATABASE_URL": url_of_test_database(),
                "DATABASE_PITR_ENGINE": "pgbackrest",
                "DATABASE_PITR_STANZA": "bad name",
            },
            base_dir=PROJECT_DIR,
        )
    message = str(refused.value)
    assert "DATABASE_PITR_PG_PATH must be" in message and "DATABASE_PITR_STANZA='bad name'" in message
    assert "\n" not in message

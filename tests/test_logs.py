"""dbops' log events are JSON objects whatever their values hold; a plain formatter still reads them."""

from __future__ import annotations

import json
import logging

import pytest

from dbops.logs import JsonFormatter, log_event

pytestmark = pytest.mark.pure


def test_log_event__values_with_quotes_newlines_and_reserved_names_stay_one_json_object(caplog):
    with caplog.at_level(logging.INFO, logger="dbops.test"):
        log_event(
            logging.getLogger("dbops.test"),
            logging.ERROR,
            "migration_run_unrecorded",
            error='relation "x" does not exist\nLINE 1: ...',
            name="shadows a LogRecord attribute",
        )
    record = next(r for r in caplog.records if r.name == "dbops.test")
    line = JsonFormatter().format(record)
    parsed = json.loads(line)
    assert "\n" not in line
    assert parsed["event"] == "migration_run_unrecorded" and parsed["levelname"] == "ERROR"
    assert parsed["error"] == 'relation "x" does not exist\nLINE 1: ...'
    assert parsed["event_name"] == "shadows a LogRecord attribute" and parsed["name"] == "dbops.test"
    assert record.getMessage().startswith("migration_run_unrecorded error=relation")

"""docs/configuration.md is held to the one table of settings (dbops.conf.variables): names and defaults."""

from __future__ import annotations

import re

import pytest

from dbops.conf import from_env
from dbops.conf.variables import VARIABLES, default
from tests import PROJECT_DIR

pytestmark = pytest.mark.pure

ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \| (.*?) \| (.*) \|\s*$")
EMPTY = ("unset", "empty", "none", "(empty)", "not set")


def documented() -> dict[str, str]:
    rows = {}
    for line in (PROJECT_DIR / "docs" / "configuration.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def shown(value) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`"
    return f"`{value}`"


def test_every_variable_has_one_row_in_the_docs():
    missing = sorted(set(VARIABLES) - set(documented()))
    assert missing == [], f"docs/configuration.md lacks a row for {missing}"


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_the_docs_show_each_default_as_the_table_has_it(name):
    variable, cell = VARIABLES[name], documented().get(name, "")
    if variable.shown:
        assert cell.startswith(variable.shown), f"{name}: docs say {cell!r}, the table {variable.shown!r}"
    elif variable.default in ("", (), None):
        assert cell.lower().startswith(EMPTY), f"{name}: docs say {cell!r} for an empty default"
    else:
        assert cell.startswith(shown(variable.default)), f"{name}: docs say {cell!r}, the table {variable.default!r}"


def test_the_dataclass_defaults_are_the_tables():
    """A configuration read from an empty environment holds the table's defaults (no second copy anywhere)."""
    config = from_env({"DBOPS_LOCALDB": "true"}, base_dir="/srv/site")
    assert config.database.pool.size == default("DATABASE_POOL_SIZE")
    assert config.health.probe_timeout == default("DBOPS_HEALTH_PROBE_TIMEOUT")
    assert config.alerts.webhook_retries == default("DBOPS_ALERT_WEBHOOK_RETRIES")
    assert config.migrations.block_rows == default("MIGRATION_SAFETY_BLOCK_ROWS")
    assert type(config.health)() == config.health
    assert type(config.breaker)() == config.breaker

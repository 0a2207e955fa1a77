"""What every insight check returns: a `Raw` finding (PostgreSQL's names; `service` maps them to models), levels."""

from __future__ import annotations

import dataclasses

INFO, WARN, CRITICAL = "info", "warn", "critical"
WRAPAROUND = 2**31 - 1  # transaction IDs (and MultiXact IDs) left before PostgreSQL stops accepting writes
TYPE_MAX = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}
MB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Raw:
    code: str
    level: str
    object: str
    message: str
    fix: str
    table: str | None = None
    column: str | None = None
    detail: dict = dataclasses.field(default_factory=dict)


def level_of(value: float, warn: float, critical: float) -> str | None:
    return CRITICAL if value >= critical else WARN if value >= warn else None

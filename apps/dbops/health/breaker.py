from __future__ import annotations

import dataclasses
from typing import ClassVar

from health_check.exceptions import ServiceUnavailable, ServiceWarning

from dbops.breaker.state import State, get_breaker
from dbops.health.base import DbopsCheck


@dataclasses.dataclass(repr=False)
class BreakerClosed(DbopsCheck):
    """Open breaker: not ready (requests are being refused). Half-open: recovering."""

    title: ClassVar[str] = "Circuit breaker"

    def run(self) -> None:
        state = get_breaker().current().state
        if state == State.OPEN:
            raise ServiceUnavailable("circuit breaker open: the database was unreachable; requests get 503")
        if state == State.HALF_OPEN:
            raise ServiceWarning("circuit breaker half-open: a trial request decides whether it closes")

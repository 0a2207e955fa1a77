"""What every dbops check shares: a budget from settings, so no check outlives a probe."""

from __future__ import annotations

import dataclasses
import datetime
from typing import ClassVar

from health_check import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from dbops.conf import get_config
from dbops.database.server import Finding


@dataclasses.dataclass(repr=False)
class DbopsCheck(HealthCheck):
    """Base: `alias` is the only field; reports name a check by its title and alias ("Database latency (default)")."""

    title: ClassVar[str] = "dbops check"
    alias: str = "default"

    def __repr__(self) -> str:  # django-health-check names results by repr
        return f"{self.title} ({self.alias})"

    @property
    def budget(self) -> float:
        # Checkouts and statements get 80 % of the probe budget, so a check reports its own failure
        # before the view's overall deadline cuts it off.
        return 0.8 * get_config().health.probe_timeout

    @property
    def timeout(self) -> datetime.timedelta:  # read by django-health-check's runner
        return datetime.timedelta(seconds=self.budget)

    def raise_findings(self, findings: list[Finding] | tuple[Finding, ...]) -> None:
        """Raise the worst level among `findings`, with all their messages."""
        if not findings:
            return
        message = "; ".join(f.message for f in findings)
        if any(f.level == "failure" for f in findings):
            raise ServiceUnavailable(message)
        raise ServiceWarning(message)

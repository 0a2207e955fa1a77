from __future__ import annotations

import dataclasses
from typing import ClassVar

from health_check.exceptions import ServiceUnavailable, ServiceWarning

from dbops.health.base import DbopsCheck
from dbops.insights.checks import THRESHOLD_CODES
from dbops.insights.shared import latest_report


def _summary(found: list[dict]) -> str:
    """One line naming each finding: "I002 critical sequence public.x_id_seq (app.Model.id); ..."."""
    return "; ".join(
        f"{i['code']} {i['level']} {i['object']}" + (f" ({i['model']})" if i["model"] else "") for i in found
    )


@dataclasses.dataclass(repr=False)
class DatabaseInsights(DbopsCheck):
    """The thresholded insights (wraparound, sequences, autovacuum, slots, cache) of the shared report.

    Index housekeeping (I003-I006) and top statements (I009) are the admin page's and the dashboard's.
    """

    title: ClassVar[str] = "Database insights"

    def run(self) -> None:
        try:
            report = latest_report(self.alias)
        except Exception as exc:
            raise ServiceUnavailable(f"insights could not run ({type(exc).__name__})") from exc
        found = [i for i in report["insights"] if i["code"] in THRESHOLD_CODES and i["level"] != "info"]
        if any(i["level"] == "critical" for i in found):
            raise ServiceUnavailable(_summary(found))
        if found:
            raise ServiceWarning(_summary(found))

from __future__ import annotations

import dataclasses
from typing import ClassVar

from health_check.exceptions import ServiceUnavailable, ServiceWarning

from dbops.health.base import DbopsCheck
from dbops.replication.patroni import cluster_view


@dataclasses.dataclass(repr=False)
class PatroniCluster(DbopsCheck):
    """Patroni's view: a confirmed leader, members streaming, a sync standby while synchronous mode is on."""

    title: ClassVar[str] = "Patroni cluster"

    def run(self) -> None:
        try:
            view = cluster_view(timeout=self.budget)
        except OSError as exc:
            raise ServiceUnavailable(str(exc)) from exc
        if view is None:
            return
        if not view["leader"] or not view["leader_confirmed"]:
            raise ServiceUnavailable(f"no confirmed leader in Patroni's cluster (members: {_describe(view)})")
        problems = [
            f"{m['name']} is {m['state']}"
            for m in view["members"]
            if m["name"] != view["leader"] and m["state"] not in ("streaming", "running")
        ]
        if view["synchronous_mode"] and not view["sync_standbys"]:
            problems.insert(
                0,
                "synchronous mode is on but no synchronous standby is confirmed: a leader lost now would not be "
                "replaced (or would lose acknowledged writes without synchronous_mode_strict)",
            )
        if problems:
            raise ServiceWarning(f"{'; '.join(problems)} (members: {_describe(view)})")


def _describe(view: dict) -> str:
    return ", ".join(
        f"{m['name']} {m['role']}/{m['state']}" + (f" lag {m['lag_bytes']} B" if m["lag_bytes"] else "")
        for m in view["members"]
    )

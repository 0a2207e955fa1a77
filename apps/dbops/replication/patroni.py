"""The cluster as Patroni sees it, read from its REST API (DBOPS_PATRONI_URLS): members, roles, lag, timeline.

dbops does not elect leaders: Patroni does (with etcd). The site finds the leader through libpq's multi-host URL
(`target_session_attrs=read-write`); this module reports what Patroni says, for health and the dashboard.
`/cluster` comes from the first node that answers, `/config` tells whether synchronous mode is on, and the
leader's own `/primary` (200 only on the leader) confirms it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from dbops.conf import get_config, mask_url


def _get(url: str, timeout: float) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - configured http(s) URLs
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:  # /primary answers 503 on a replica, with a JSON body
        return exc.code, {}


def cluster_view(*, timeout: float = 2.0) -> dict | None:
    """Return the cluster's members, leader and synchronous state; None when DBOPS_PATRONI_URLS is unset.

    Raises OSError (with the URLs masked) when no node answers.
    """
    urls = get_config().patroni_urls
    if not urls:
        return None
    errors = []
    for url in urls:
        try:
            _, cluster = _get(f"{url}/cluster", timeout)
            _, config = _get(f"{url}/config", timeout)
        except (OSError, ValueError) as exc:
            errors.append(f"{mask_url(url)}: {type(exc).__name__}")
            continue
        members = [
            {
                "name": m.get("name"),
                "role": m.get("role"),
                "state": m.get("state"),
                "host": f"{m.get('host')}:{m.get('port')}",
                "timeline": m.get("timeline"),
                "lag_bytes": m.get("lag") if isinstance(m.get("lag"), int) else None,
                "api_url": m.get("api_url"),
            }
            for m in cluster.get("members", [])
        ]
        leader = next((m for m in members if m["role"] in ("leader", "standby_leader")), None)
        confirmed = False
        if leader and leader["api_url"]:
            api = leader["api_url"].removesuffix("/patroni")
            try:
                confirmed = _get(f"{api}/primary", timeout)[0] == 200
            except (OSError, ValueError):
                confirmed = False
        return {
            "source": mask_url(url),
            "members": members,
            "leader": leader["name"] if leader else None,
            "leader_confirmed": confirmed,
            "synchronous_mode": bool(config.get("synchronous_mode")),
            "sync_standbys": [m["name"] for m in members if m["role"] == "sync_standby"],
        }
    raise OSError("no Patroni REST API answers: " + "; ".join(errors))

"""Probes answer plain http wherever dbops is mounted, whatever the site's SECURE_SSL_REDIRECT says.

Django's SecurityMiddleware redirects every plain-http request unless its path matches SECURE_REDIRECT_EXEMPT,
and load balancers and Kubernetes count a 3xx as healthy: a readiness probe that is redirected can never fail.
At start-up dbops adds patterns for its probes and /metrics that match wherever the site mounts `dbops.urls`
(the path's end, after any prefix). The detail health endpoints stay redirected: they carry a bearer token.
"""

from __future__ import annotations

import re
from typing import Any

from django.urls import NoReverseMatch, reverse

PROBE_URL_NAMES = ("dbops:health_live", "dbops:health_ready", "dbops:metrics")
# SecurityMiddleware searches each pattern in the path without its leading slash.
PROBE_REDIRECT_EXEMPT = (r"(?:^|/)health/live$", r"(?:^|/)health/ready$", r"(?:^|/)metrics$")


def exempt_probes_from_ssl_redirect(settings: Any) -> None:
    """Add dbops' probe patterns to SECURE_REDIRECT_EXEMPT when SECURE_SSL_REDIRECT is on (before any request)."""
    if not getattr(settings, "SECURE_SSL_REDIRECT", False):
        return
    current = list(getattr(settings, "SECURE_REDIRECT_EXEMPT", []))
    settings.SECURE_REDIRECT_EXEMPT = current + [p for p in PROBE_REDIRECT_EXEMPT if p not in current]


def redirected_probe_paths() -> list[str]:
    """Return the mounted probe paths SecurityMiddleware would redirect to https."""
    from django.conf import settings

    if not getattr(settings, "SECURE_SSL_REDIRECT", False):
        return []
    exempt = [re.compile(pattern) for pattern in getattr(settings, "SECURE_REDIRECT_EXEMPT", [])]
    redirected = []
    for name in PROBE_URL_NAMES:
        try:
            path = reverse(name)
        except NoReverseMatch:
            continue  # not mounted
        if not any(pattern.search(path.lstrip("/")) for pattern in exempt):
            redirected.append(path)
    return redirected

"""Who may see detail status: a staff session or `Authorization: Bearer <DBOPS_HEALTH_TOKEN>`."""

from __future__ import annotations

import functools
import hmac
import ipaddress

from django.http import HttpRequest, HttpResponse, JsonResponse

from dbops.conf import get_config


def token_matches(request: HttpRequest) -> bool:
    """Compare the bearer token with DBOPS_HEALTH_TOKEN in constant time; no token setting means no token access."""
    expected = get_config().health_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _refusal(user) -> HttpResponse | None:
    if user is not None and user.is_active and user.is_staff:
        return None
    if user is not None and user.is_authenticated:
        return JsonResponse({"detail": "staff or a token is required"}, status=403)
    response = JsonResponse({"detail": "authentication required"}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="dbops"'
    return response


def refusal(request: HttpRequest) -> HttpResponse | None:
    """Return the 401/403 response for a request that may not see detail status, else None."""
    return None if token_matches(request) else _refusal(getattr(request, "user", None))


async def arefusal(request: HttpRequest) -> HttpResponse | None:
    """Async `refusal` (reads the session user without blocking the event loop)."""
    if token_matches(request):
        return None
    return _refusal(await request.auser() if hasattr(request, "auser") else None)


def staff_or_token_required(view):
    """Decorate a sync view: staff session or bearer token, else 401/403."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        return refusal(request) or view(request, *args, **kwargs)

    return wrapper


def is_loopback(request: HttpRequest) -> bool:
    """Tell whether the request comes from this host (REMOTE_ADDR; a local reverse proxy looks local too)."""
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """Return the 401/403 for a /metrics request that is not public, not from loopback and without the token."""
    config = get_config()
    if config.metrics_public or (config.metrics_allow_loopback and is_loopback(request)) or token_matches(request):
        return None
    return refusal(request)

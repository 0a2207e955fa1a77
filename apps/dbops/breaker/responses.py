"""The small 503 the breaker answers with: JSON for API clients, HTML for browsers; no detail, no secret."""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse

HTML = (
    "<!doctype html><html><head><meta charset=utf-8><title>Temporarily unavailable</title></head>"
    "<body><h1>Temporarily unavailable</h1><p>The service cannot reach its database. "
    "Please try again in {retry_after} s.</p></body></html>"
)


def database_unavailable_response(request, retry_after: int, breaker_state: str) -> HttpResponse:
    """Return a 503 with Retry-After; `X-Dbops-Breaker` says whether the breaker or a failure answered."""
    accept = request.headers.get("Accept", "")
    response: HttpResponse
    if "json" in accept or "html" not in accept:
        response = JsonResponse({"error": "database unavailable", "retry_after": retry_after}, status=503)
    else:
        response = HttpResponse(HTML.format(retry_after=retry_after), status=503, content_type="text/html")
    response["Retry-After"] = str(retry_after)
    response["X-Dbops-Breaker"] = breaker_state
    response["Cache-Control"] = "no-store"
    return without_request_log(response)


def without_request_log(response: HttpResponse) -> HttpResponse:
    """Keep Django from logging this 5xx as an ERROR of django.request.

    Under an outage that is thousands of lines a minute (every request, every load-balancer probe). The breaker
    logs each transition once, and metrics count the rejections and failing checks.
    """
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own marker (django.utils.log)
    return response

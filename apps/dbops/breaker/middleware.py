"""The circuit breaker's middleware: a thin shell over `dbops.breaker.state`."""

from __future__ import annotations

import contextlib
import sys

from django.conf import settings
from django.db import connections
from django.urls import NoReverseMatch, reverse

from dbops.breaker import deadline
from dbops.breaker.outages import is_database_outage
from dbops.breaker.responses import database_unavailable_response
from dbops.breaker.state import get_breaker
from dbops.conf import get_config
from dbops.monitoring import metrics


class CircuitBreakerMiddleware:
    """Fail fast with 503 while the database is down; turn database failures into 503s, never 500s."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        config = get_config().breaker
        # Set: exactly these; empty: dbops' health and metrics URLs and STATIC_URL, wherever the site mounts them
        # (resolved on the first request, once the URLconf can be reversed).
        self.exempt_paths = tuple(config.exempt_paths) or None
        self.count_statement_timeouts = config.count_statement_timeouts
        self.alias = config.alias
        self.breaker = get_breaker()

    def __call__(self, request):
        if self.exempt_paths is None:
            self.exempt_paths = default_exempt_paths()
        if request.path.startswith(self.exempt_paths):
            return self.get_response(request)
        decision = self.breaker.before_request()
        if not decision.allow:
            metrics.BREAKER_REJECTIONS.inc()
            return database_unavailable_response(request, decision.retry_after, str(decision.state))
        token = deadline.start_request()
        evidence = DatabaseEvidence()
        # Not `execute_wrapper()`: it pops the last wrapper, and connection_created adds dbops' query timer and
        # deadline during the request, so it would pop theirs and leave this one behind, request after request.
        wrappers = connections[self.alias].execute_wrappers
        wrappers.insert(0, evidence)
        try:
            response = self.get_response(request)
        finally:
            deadline.end_request(token)
            with contextlib.suppress(ValueError):
                wrappers.remove(evidence)
        failure = getattr(request, "dbops_database_failure", None)
        if failure is None:
            # Only the database's own word may close the breaker or hold it closed: a 404 or a static file that
            # never reached it says nothing (with the server down it reset the failure count between failures).
            if evidence.succeeded:
                self.breaker.record_success(decision)
            elif decision.trial:
                self.breaker.settle_trial()
            return response
        metrics.DATABASE_FAILURES.inc()
        self.breaker.record_failure(decision, failure)
        return database_unavailable_response(request, self.breaker.retry_after(), "failure")

    def process_exception(self, request, exception):
        if is_database_outage(exception, count_statement_timeouts=self.count_statement_timeouts):
            request.dbops_database_failure = exception
            return database_unavailable_response(request, 1, "failure")
        return None


class DatabaseEvidence:
    """An `execute_wrapper` that notes whether a statement of this request reached the database and succeeded."""

    __slots__ = ("succeeded",)

    def __init__(self) -> None:
        self.succeeded = False

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        self.succeeded = True
        return result


def default_exempt_paths() -> tuple[str, ...]:
    """Return the paths the breaker never answers for: dbops' health tier and metrics, and static files."""
    paths = []
    for name in ("dbops:health", "dbops:metrics"):
        with contextlib.suppress(NoReverseMatch):
            paths.append(reverse(name))
    if settings.STATIC_URL and settings.STATIC_URL.startswith("/"):
        paths.append(settings.STATIC_URL)
    return tuple(paths)


def mark_database_failure(sender, request=None, **kwargs) -> None:
    """`got_request_exception` receiver: database failures raised outside the view (e.g. saving a session)."""
    error = sys.exc_info()[1]
    if request is not None and error is not None:
        count = get_config().breaker.count_statement_timeouts
        if is_database_outage(error, count_statement_timeouts=count):
            request.dbops_database_failure = error

"""Thin middleware shells over the dbops services."""

from __future__ import annotations

import sys
import time

from django.conf import settings

from . import metrics, replicas
from .breaker import get_breaker
from .monitoring import current_origin, refresh_pool_metrics, request_window
from .outages import is_database_outage
from .responses import database_unavailable_response
from .snapshots import publish as publish_snapshot


class QueryMonitoringMiddleware:
    """Time each request, name the view for the slow-query log, refresh pool gauges at most once a second."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.histogram = metrics.REQUEST_DURATION
        self._next_refresh = 0.0

    def __call__(self, request):
        token = current_origin.set(f"path:{request.path}")
        started = time.perf_counter()
        try:
            return self.get_response(request)
        finally:
            seconds = time.perf_counter() - started
            self.histogram.observe(seconds)
            request_window.add(seconds * 1000)
            current_origin.reset(token)
            now = time.monotonic()
            if now >= self._next_refresh:
                self._next_refresh = now + 1.0
                refresh_pool_metrics()
                publish_snapshot()

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        current_origin.set(f"view:{match.view_name}" if match and match.view_name else f"path:{request.path}")


class CircuitBreakerMiddleware:
    """Fail fast with 503 while the database is down; turn database failures into 503s, never 500s."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        config = settings.DBOPS.breaker
        self.exempt_paths = tuple(config.exempt_paths)
        self.count_statement_timeouts = config.count_statement_timeouts
        self.breaker = get_breaker()

    def __call__(self, request):
        if request.path.startswith(self.exempt_paths):
            return self.get_response(request)
        decision = self.breaker.before_request()
        if not decision.allow:
            metrics.BREAKER_REJECTIONS.inc()
            return database_unavailable_response(request, decision.retry_after, str(decision.state))
        response = self.get_response(request)
        failure = getattr(request, "dbops_database_failure", None)
        if failure is None:
            self.breaker.record_success(decision)
            return response
        metrics.DATABASE_FAILURES.inc()
        self.breaker.record_failure(decision, failure)
        return database_unavailable_response(request, self.breaker.retry_after(), "failure")

    def process_exception(self, request, exception):
        if is_database_outage(exception, count_statement_timeouts=self.count_statement_timeouts):
            request.dbops_database_failure = exception
            return database_unavailable_response(request, 1, "failure")
        return None


def mark_database_failure(sender, request=None, **kwargs) -> None:
    """`got_request_exception` receiver: database failures raised outside the view (e.g. saving a session)."""
    error = sys.exc_info()[1]
    if request is not None and error is not None:
        count = settings.DBOPS.breaker.count_statement_timeouts
        if is_database_outage(error, count_statement_timeouts=count):
            request.dbops_database_failure = error


class ReplicaRoutingMiddleware:
    """Scope read-your-writes to one request: a write sends the rest of this request's reads to the primary."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        token = replicas.start_request()
        try:
            return self.get_response(request)
        finally:
            replicas.end_request(token)

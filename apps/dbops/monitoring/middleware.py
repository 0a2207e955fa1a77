"""Request timing for the query monitor: a thin shell over `dbops.monitoring`."""

from __future__ import annotations

import time

from dbops.monitoring import metrics
from dbops.monitoring.queries import current_origin, refresh_pool_metrics, request_window
from dbops.monitoring.snapshots import publish as publish_snapshot


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

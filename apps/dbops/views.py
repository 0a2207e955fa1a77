"""Thin health/status views: they pick checks or call a report service and render the result."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django_prometheus.exports import ExportToDjangoView
from health_check.exceptions import ServiceWarning
from health_check.views import HealthCheckView

from dbops.access import arefusal, metrics_refusal, staff_or_token_required
from dbops.backups import logical as backups
from dbops.breaker.responses import without_request_log
from dbops.conf import get_config
from dbops.health import reports
from dbops.insights.metrics import refresh_insight_metrics
from dbops.logs import log_event
from dbops.monitoring.queries import (
    performance_report,
    refresh_history_metrics,
    refresh_pool_metrics,
    refresh_server_metrics,
)

logger = logging.getLogger("dbops.health")


@never_cache
def live(request):
    """Liveness: the process serves requests. Never touches the database."""
    return HttpResponse("ok\n", content_type="text/plain")


class DbopsHealthView(HealthCheckView):
    """django-health-check answers 500 for any problem; we answer 503 for failures and 200 for warnings only."""

    def failing(self) -> list[str]:
        return [
            type(result.check).__name__
            for result in self.results
            if result.error and not isinstance(result.error, ServiceWarning)
        ]


class FullHealthView(DbopsHealthView):
    """Every check, as HTML, JSON (`Accept: application/json`), text or openmetrics. Staff or token only."""

    async def dispatch(self, request, *args, **kwargs):
        refused = await arefusal(request)
        return refused or await super().dispatch(request, *args, **kwargs)

    async def get(self, request, *args, **kwargs):
        response = await super().get(request, *args, **kwargs)
        if response.status_code == 500:
            response.status_code = 503 if self.failing() else 200
        return without_request_log(response) if response.status_code == 503 else response


class _ReadyCache:
    """The last readiness answer, reused for a few seconds so a probe storm does not become database load."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[float, int, dict] | None = None
        self._last_status = 200  # a worker starts ready: only a change from there is news

    # A failure is kept at most this long: readiness must turn 200 as soon as the database is back.
    FAILURE_MAX_AGE = 0.5

    def get(self, max_age: float) -> tuple[int, dict] | None:
        with self._lock:
            if self._value is None:
                return None
            stored_at, status, payload = self._value
            if time.monotonic() - stored_at < (max_age if status == 200 else min(max_age, self.FAILURE_MAX_AGE)):
                return status, payload
        return None

    def put(self, status: int, payload: dict) -> None:
        with self._lock:
            self._value = (time.monotonic(), status, payload)

    def log_change(self, status: int, payload: dict) -> None:
        """Log one line when this worker's readiness changes (never one per probe: probes come every second)."""
        with self._lock:
            changed, self._last_status = status != self._last_status, status
        if changed:
            log_event(logger, logging.WARNING if status != 200 else logging.INFO, "readiness_changed", **payload)


ready_cache = _ReadyCache()


class ReadinessView(DbopsHealthView):
    """Public readiness for load balancers: status only, 503 when not ready, within a hard time budget."""

    async def get(self, request, *args, **kwargs):
        health = get_config().health
        cached = ready_cache.get(health.ready_cache_seconds)
        if cached is None:
            cached = await self._evaluate(budget=float(health.probe_timeout))
            ready_cache.put(*cached)
            ready_cache.log_change(*cached)
        status, payload = cached
        response = JsonResponse(payload, status=status)
        return without_request_log(response) if status == 503 else response

    async def _evaluate(self, budget: float) -> tuple[int, dict]:
        try:
            with self.get_executor() as executor:
                self.results = await asyncio.wait_for(
                    asyncio.gather(*(check.get_result(executor) for check in self.get_checks())), budget
                )
        except TimeoutError:
            return 503, {"status": "unavailable", "failing": ["timeout"]}
        failing = self.failing()
        if failing:
            return 503, {"status": "unavailable", "failing": failing}
        return 200, {"status": "ready"}


def _json_report(build):
    @never_cache
    @staff_or_token_required
    def view(request):
        try:
            report = build()
        except Exception as exc:
            return without_request_log(JsonResponse({"error": f"report failed ({type(exc).__name__})"}, status=503))
        if report.get("healthy") is False:  # the answer is the report: no ERROR line per probe in the log
            return without_request_log(JsonResponse(report, status=503))
        return JsonResponse(report)

    view.__name__ = build.__name__
    view.__doc__ = build.__doc__
    return view


database_health = _json_report(reports.database_health)
database_performance = _json_report(performance_report)
backup_status = _json_report(backups.backup_status)
database_schema = _json_report(reports.database_schema)
migrations_status = _json_report(reports.migrations_status)
database_insights = _json_report(reports.database_insights)


@never_cache
def metrics(request):
    """Prometheus exposition (all workers in multiprocess mode): loopback, token or DBOPS_METRICS_PUBLIC."""
    refused = metrics_refusal(request)
    if refused:
        return refused
    refresh_pool_metrics()
    refresh_server_metrics()
    refresh_history_metrics()
    refresh_insight_metrics()
    return ExportToDjangoView(request)

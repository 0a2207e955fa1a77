"""Thin health/status views."""

from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from health_check.views import HealthCheckView


@never_cache
def live(request):
    """Liveness: the process serves requests. Never touches the database."""
    return HttpResponse("ok\n", content_type="text/plain")


class ReadinessView(HealthCheckView):
    """django-health-check answers 500 on failure; a load balancer expects 503."""

    async def get(self, request, *args, **kwargs):
        response = await super().get(request, *args, **kwargs)
        if response.status_code == 500:
            response.status_code = 503
        return response

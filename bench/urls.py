"""URLs for benchmarks and tests only (DJANGO_ROOT_URLCONF=bench.urls): DB-bound sample endpoints.

Never the production urlconf: these endpoints are public and hit the database.
"""

import os

from django.db import connection
from django.http import HttpResponse
from django.urls import include, path


def select_one(request):
    """One `SELECT 1` through the pool: the cheapest DB-bound endpoint."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return HttpResponse("1", content_type="text/plain")


def worker(request):
    """`SELECT 1` through the pool, answered with this process' pid: which worker served it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return HttpResponse(str(os.getpid()), content_type="text/plain")


def sleep(request):
    """One `pg_sleep` of `?ms=` milliseconds (a slow query on demand)."""
    milliseconds = int(request.GET.get("ms", "0"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [milliseconds / 1000])
    return HttpResponse("slept", content_type="text/plain")


def write(request):
    """Insert one row into bench_writes (created by the test or benchmark) and answer its id once committed."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_writes (at) VALUES (now()) RETURNING id")
        row_id = cursor.fetchone()[0]
    return HttpResponse(str(row_id), content_type="text/plain")


def read(request):
    """One ORM read (routed: the replica when DATABASE_REPLICA_URL is set and fresh)."""
    from django.contrib.contenttypes.models import ContentType

    return HttpResponse(str(ContentType.objects.filter(app_label="auth").count()), content_type="text/plain")


urlpatterns = [
    path("bench/select-one", select_one),
    path("bench/worker", worker),
    path("bench/read", read),
    path("bench/write", write),
    path("bench/sleep", sleep),
    path("", include("project.urls")),
]


def integrity_error(request):
    """Violate a unique constraint: an application bug, which must never trip the circuit breaker."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS dbops_dupe (id int PRIMARY KEY)")
        cursor.execute("INSERT INTO dbops_dupe VALUES (1) ON CONFLICT DO NOTHING")
        cursor.execute("INSERT INTO dbops_dupe VALUES (1)")
    return HttpResponse("unreachable", content_type="text/plain")


async def async_select_one(request):
    """Run select_one from an async view: dbops' middleware must not break async views."""
    from asgiref.sync import sync_to_async

    await sync_to_async(select_one)(request)
    return HttpResponse("1", content_type="text/plain")


urlpatterns.insert(0, path("bench/integrity-error", integrity_error))
urlpatterns.insert(0, path("bench/async-select-one", async_select_one))

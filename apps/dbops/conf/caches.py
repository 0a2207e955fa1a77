"""Whether a configured cache is shared between processes (breaker state, process snapshots, alert episodes)."""

from __future__ import annotations

# Backends whose data lives in one process: workers, the evaluator and `breaker reset` cannot see each other.
PER_PROCESS_CACHE_BACKENDS = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def cache_backend(alias: str) -> str:
    """Return the dotted BACKEND of cache `alias` ("" when it is not configured)."""
    from django.conf import settings

    return str((getattr(settings, "CACHES", {}) or {}).get(alias, {}).get("BACKEND", ""))


def cache_is_shared(alias: str) -> bool:
    """Tell whether cache `alias` is seen by every process (Redis, Memcached, database, file), not one process."""
    backend = cache_backend(alias)
    return bool(backend) and backend not in PER_PROCESS_CACHE_BACKENDS

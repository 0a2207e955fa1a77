"""Read-your-writes per request: a thin shell over the replica router."""

from __future__ import annotations

from dbops.replication import router


class ReplicaRoutingMiddleware:
    """Scope read-your-writes to one request: a write sends the rest of this request's reads to the primary."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        token = router.start_request()
        try:
            return self.get_response(request)
        finally:
            router.end_request(token)

"""Is a backup's file still where a record says it is? Asked where a claim is made, answered from a brief cache.

"Newest verified" is a promise that a copy restores: an object deleted from the bucket (a lifecycle rule, a hand,
an attacker) must stop being that promise at once, not when someone next verifies it. One HEAD (or stat) per
claim, remembered for PRESENCE_TTL seconds per process, keeps health and the dashboard cheap.
"""

from __future__ import annotations

import threading
import time

from dbops.backups.failures import storage_failure

PRESENCE_TTL = 30.0

_seen: dict[tuple[str, ...], tuple[float, bool | None, str]] = {}
_lock = threading.Lock()


def is_present(storage, name: str) -> tuple[bool | None, str]:
    """Tell whether `name` exists in `storage`: (True/False, ""), or (None, why) when the storage cannot say.

    Asked at most every PRESENCE_TTL seconds per file, failures included: a storage that is down must not make
    every health probe wait out its timeouts.
    """
    where = (str(getattr(storage, "location", "")), str(getattr(storage, "bucket_name", "")))
    key = (type(storage).__name__, *where, name)
    now = time.monotonic()
    with _lock:
        cached = _seen.get(key)
    if cached is not None and now - cached[0] < PRESENCE_TTL:
        return cached[1], cached[2]
    try:
        present: bool | None = bool(storage.exists(name))
        reason = ""
    except Exception as exc:
        present, reason = None, storage_failure(exc) or f"looking for {name}: {type(exc).__name__}: {exc}"
    with _lock:
        _seen[key] = (now, present, reason)
    return present, reason


def forget() -> None:
    """Drop what was remembered (a prune or a backup just changed the storage; tests)."""
    with _lock:
        _seen.clear()

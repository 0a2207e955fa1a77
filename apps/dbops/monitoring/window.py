"""A rolling window of recent durations per process: bounded memory, percentiles on demand."""

from __future__ import annotations

import collections
import time


def percentile(samples: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by linear interpolation between closest ranks (numpy's default)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class RollingWindow:
    """The last `max_samples` durations (ms) not older than `max_age` seconds.

    Appends are lock-free (a deque append is atomic); readers copy the deque and filter by age.
    """

    def __init__(self, max_samples: int = 20_000, max_age: float = 300.0) -> None:
        self.max_age = max_age
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=max_samples)

    def add(self, duration_ms: float, *, now: float | None = None) -> None:
        self._samples.append((time.monotonic() if now is None else now, duration_ms))

    def values(self, *, now: float | None = None) -> list[float]:
        cutoff = (time.monotonic() if now is None else now) - self.max_age
        return [duration for at, duration in list(self._samples) if at >= cutoff]

    def summary(self, *, budget_ms: float | None = None) -> dict[str, float | int | bool]:
        """Return count and p50/p95/p99 (ms); with `budget_ms`, whether p95 is within it."""
        values = self.values()
        result: dict[str, float | int | bool] = {
            "count": len(values),
            "p50_ms": round(percentile(values, 50), 3),
            "p95_ms": round(percentile(values, 95), 3),
            "p99_ms": round(percentile(values, 99), 3),
            "max_ms": round(max(values), 3) if values else 0.0,
        }
        if budget_ms is not None:
            result["budget_ms"] = budget_ms
            result["within_budget"] = result["p95_ms"] <= budget_ms
        return result

    def clear(self) -> None:
        self._samples.clear()

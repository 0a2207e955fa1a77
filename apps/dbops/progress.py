"""Progress of a long operation: a callable that takes one line (commands print it, services only call it)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def quiet(message: str) -> None:
    """Progress sink that prints nothing (the default of every service that reports progress)."""

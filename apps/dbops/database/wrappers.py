"""dbops' execute wrappers, each attached once to a DatabaseWrapper however often it checks out a connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def attach_once(connection: Any, name: str, make: Callable[..., Any], *args: Any) -> None:
    """Append `make(*args)` to `connection.execute_wrappers` unless the one made before is still there.

    `connection_created` fires on every pooled checkout, so this runs per request: one attribute read and a scan
    of a short list by identity, instead of an isinstance test of every wrapper.
    """
    attached = getattr(connection, name, None)
    if attached is not None and attached in connection.execute_wrappers:
        return
    attached = make(*args)
    setattr(connection, name, attached)
    connection.execute_wrappers.append(attached)

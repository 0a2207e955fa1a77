"""Reading the one row a query always returns (a count, a setting, a function's result) without Optional checks."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError


def one_row(cursor: Any) -> tuple[Any, ...]:
    """Return the cursor's next row; a query that should always return one and returned none is a database error."""
    row = cursor.fetchone()
    if row is None:
        raise DatabaseError("the query returned no row where one was certain")
    return tuple(row)

"""Telling a storage failure (the bucket down, frozen, or its certificate untrusted) from everything else.

Commands turn one into a single line and exit 2 (an error, not a finding about a backup); nothing else is
imported here, so any command may ask.
"""

from __future__ import annotations

import ssl


def _storage_error_types() -> tuple[type[BaseException], ...]:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # no S3 support installed: only TLS errors can come from a store
        return (ssl.SSLError,)
    return (BotoCoreError, ClientError, ssl.SSLError)


def storage_failure(exc: BaseException) -> str | None:
    """Return one line naming the storage and what went wrong when `exc` (or its cause) is a storage failure."""
    from dbops.conf import get_config, mask_url

    types = _storage_error_types()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, types):
            s3 = get_config().backup_s3
            where = (
                f"s3://{s3.bucket}/{s3.prefix}" + (f" at {s3.endpoint_url}" if s3.endpoint_url else "") if s3 else ""
            )
            lines = [line for line in mask_url(str(current)).splitlines() if line.strip()]
            reason = (lines[-1] if lines else type(current).__name__)[:300]
            return f"the backup storage {where} cannot be used: {reason}".replace("  ", " ")
        current = current.__cause__ or current.__context__
    return None

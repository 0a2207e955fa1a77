"""Signed backups: what a backup is, signed with a key the database does not hold.

What is signed: the file name, database, start, sha256, size, row counts, compression and encryption.

age authenticates no sender: anyone with the public recipient can make a valid ciphertext, and anyone who can
edit rows can make a record describe it. An HMAC-SHA256 with DATABASE_BACKUP_SIGNING_KEY (an environment secret,
never in the database or the bucket) makes either forgery detectable: verification and restores check it first
and refuse an unsigned or mis-signed backup while the key is set. HMAC rather than a public-key signature: every
host that signs also verifies, so a shared secret gives the same protection with the standard library alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from dbops.exceptions import VerificationFailed

SIGNED = ("name", "database", "started_at", "sha256", "size_bytes", "row_counts", "encrypted", "compressed")


def describe(**fields: Any) -> dict[str, Any]:
    """Return the signed description of a backup: exactly the SIGNED fields."""
    missing = set(SIGNED) - set(fields)
    if missing:
        raise ValueError(f"a backup description needs {sorted(missing)}")
    return {name: fields[name] for name in SIGNED}


def record_description(record) -> dict[str, Any]:
    return describe(
        name=record.filename,
        database=record.database_name,
        started_at=record.started_at.isoformat(),
        sha256=record.sha256,
        size_bytes=record.size_bytes,
        row_counts=record.row_counts or {},
        encrypted=record.encrypted,
        compressed=record.compressed,
    )


def metadata_description(name: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return describe(
        name=name,
        database=metadata.get("database", ""),
        started_at=metadata.get("started_at", ""),
        sha256=metadata.get("sha256", ""),
        size_bytes=metadata.get("size_bytes"),
        row_counts=metadata.get("row_counts") or {},
        encrypted=bool(metadata.get("encrypted")),
        compressed=bool(metadata.get("compressed")),
    )


def sign(key: str, description: dict[str, Any]) -> str:
    canonical = json.dumps(description, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key.encode(), canonical, hashlib.sha256).hexdigest()


def check(key: str, description: dict[str, Any], signature: str, *, label: str) -> None:
    """Refuse (VerificationFailed, one line) an unsigned or mis-signed backup while a signing key is set."""
    if not key:
        return
    if not signature:
        raise VerificationFailed(
            f"{label} is not signed, and DATABASE_BACKUP_SIGNING_KEY is set: refusing a backup whose origin cannot "
            "be proven (taken before signing was turned on, or forged)"
        )
    if not hmac.compare_digest(sign(key, description), signature):
        raise VerificationFailed(
            f"{label}: its signature does not match what it claims to be (name, sha256, size, row counts or start "
            "were changed after the backup: tampered with, or signed with another key)"
        )

"""Restoring with nothing but the storage and the keys: a new machine, an empty database, one command.

Every dump is stored beside its metadata (sha256, size, row counts, start, and whether verification passed), so
the storage alone says what it holds. `restore_from_storage` checks the object against its metadata, decrypts and
uncompresses it, restores it into an empty database in one transaction, compares every table's row count with
the metadata, then ends the history the dump carries (its own record, dumped while running, ends as succeeded).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json

from django.db import DatabaseError, connections

from dbops.backups import signing
from dbops.backups.logical.database import count_rows, maintenance_connection, user_tables
from dbops.backups.logical.locks import reap_interrupted
from dbops.backups.logical.storage import BACKUP_FILE_NAME, backup_storage
from dbops.backups.logical.verify import fetch_checked, restore_into
from dbops.conf import get_config
from dbops.exceptions import RestoreRefused, VerificationFailed
from dbops.progress import Progress
from dbops.progress import quiet as _quiet


@dataclasses.dataclass(frozen=True)
class StoredBackup:
    """A dump in the storage as its metadata describes it."""

    name: str
    backup_id: int
    metadata: dict

    @property
    def started_at(self) -> str:
        return str(self.metadata.get("started_at", ""))

    @property
    def verified(self) -> bool:
        return self.metadata.get("verification") == "passed"

    def summary(self) -> dict:
        return {
            "name": self.name,
            "started_at": self.started_at,
            "database": self.metadata.get("database", ""),
            "size_bytes": self.metadata.get("size_bytes"),
            "encrypted": bool(self.metadata.get("encrypted")),
            "verified": self.verified,
            "verified_at": self.metadata.get("verified_at", ""),
        }


def stored_backups(storage=None) -> list[StoredBackup]:
    """Return the dumps the storage holds with readable metadata, oldest first."""
    storage = storage or backup_storage()
    _, files = storage.listdir("")
    found = []
    present = set(files)
    for name in sorted(files):
        match = BACKUP_FILE_NAME.match(name)
        if not match or f"{name}.metadata" not in present:
            continue
        try:
            with storage.open(f"{name}.metadata", "rb") as handle:
                metadata = json.loads(handle.read())
        except (FileNotFoundError, ValueError):
            continue
        if isinstance(metadata, dict) and metadata.get("sha256"):
            found.append(StoredBackup(name=name, backup_id=int(match["id"]), metadata=metadata))
    return sorted(found, key=lambda stored: (stored.started_at, stored.backup_id))


def choose(stored: list[StoredBackup], *, name: str = "", newest_verified: bool = False) -> StoredBackup:
    """Pick the dump named `name`, or the newest whose verification passed; refuse with one line otherwise."""
    if name:
        for candidate in stored:
            if candidate.name == name:
                return candidate
        raise RestoreRefused(f"the storage holds no backup named {name!r} with its metadata (see --from-storage)")
    verified = [candidate for candidate in stored if candidate.verified]
    if newest_verified and verified:
        return verified[-1]
    raise RestoreRefused(
        "the storage holds no verified backup: name one with --from-storage NAME (listed by --from-storage)"
        if stored
        else "the storage holds no backup with its metadata"
    )


def _require_empty(alias: str) -> str:
    database = connections[alias].settings_dict["NAME"]
    with maintenance_connection(alias) as conn:
        tables = user_tables(conn)
    if tables:
        raise RestoreRefused(
            f"database {database!r} is not empty ({len(tables)} tables): a restore from the storage alone goes into "
            "an empty database (create a new one, or restore a recorded backup with --id)"
        )
    return database


def restore_from_storage(stored: StoredBackup, *, alias: str = "default", progress: Progress = _quiet) -> dict:
    """Restore `stored` into `alias`' empty database exactly; return what was restored and checked."""
    database = _require_empty(alias)
    metadata = stored.metadata
    signing.check(
        get_config().backup_signing_key,
        signing.metadata_description(stored.name, metadata),
        str(metadata.get("signature", "")),
        label=stored.name,
    )
    progress(f"fetching {stored.name} and checking size and sha256 against its metadata")
    dump = fetch_checked(
        backup_storage(),
        stored.name,
        sha256=str(metadata.get("sha256", "")),
        size=int(metadata.get("size_bytes") or 0),
        encrypted=bool(metadata.get("encrypted")),
        compressed=bool(metadata.get("compressed")),
        label=stored.name,
        backup_id=stored.backup_id,
    )
    progress(f"restoring into {database} (pg_restore, one transaction)")
    restore_into(alias, database, dump)
    progress("comparing row counts with the metadata")
    with maintenance_connection(alias) as conn:
        restored = count_rows(conn)
    expected = metadata.get("row_counts") or {}
    mismatches = {table: [rows, restored.get(table)] for table, rows in expected.items() if restored.get(table) != rows}
    if mismatches:
        raise VerificationFailed(
            f"{stored.name}: row counts differ from the metadata after the restore in {len(mismatches)} table(s): "
            f"{', '.join(sorted(mismatches))}"
        )
    connections[alias].close()
    # The dump holds dbops' history as it was while dumping: end its records (the restored backup's own ends as
    # succeeded, its metadata is beside it). A dump taken before dbops was installed has no history to end.
    with contextlib.suppress(DatabaseError):
        reap_interrupted(alias)
    return {
        "restored": stored.name,
        "database": database,
        "tables": len(restored),
        "rows": sum(restored.values()),
        "row_counts_match": True,
    }

"""Where backups are kept (dbbackup's storage, the local copy beside a bucket); how files are named and hashed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from pathlib import Path

from dbbackup.db.base import get_connector
from django.core.files.storage import FileSystemStorage, storages
from django.db import connections

from dbops.conf import DBOPS_POSTGRES_ENGINE, get_config, mask_url
from dbops.logs import log_event

logger = logging.getLogger("dbops.backups")


def _undo_dbbackup_debug_logger() -> None:
    """Give `dbbackup.command` back the level LOGGING sets (default: inherit), not the DEBUG its import forces.

    Otherwise every dump prints its full pg_dump command line whatever the site's LOGGING says.
    """
    from django.conf import settings

    configured = ((getattr(settings, "LOGGING", None) or {}).get("loggers") or {}).get("dbbackup.command") or {}
    logging.getLogger("dbbackup.command").setLevel(configured.get("level", logging.NOTSET))


_undo_dbbackup_debug_logger()


# The names dbops gives backup files: <database>-<YYYYmmdd-HHMMSS>-<record id>.dump[.gz][.age]
BACKUP_FILE_NAME = re.compile(r"^.+-\d{8}-\d{6}-(?P<id>\d+)\.dump(?:\.gz)?(?:\.age)?$")


def backup_file_name(record, extension: str) -> str:
    """Return the name `record`'s backup is stored under (its id and start make it this site's own)."""
    return f"{record.database_name}-{record.started_at:%Y%m%d-%H%M%S}-{record.pk}.{extension}"


def backup_file_names(record) -> set[str]:
    """Every name `record`'s backup may have, whatever its compression and encryption."""
    return {backup_file_name(record, extension) for extension in ("dump", "dump.gz", "dump.age", "dump.gz.age")}


def stored_description(record, storage=None) -> tuple[str, dict] | None:
    """Return (file name, metadata) of `record`'s backup when its metadata is in `storage` and describes it.

    The metadata is written beside a dump only once the dump is stored whole, so it proves the backup ended
    well even where the database holds no record of that (a restored dump carries its own record as running).
    """
    storage = storage or backup_storage()
    for name in sorted(backup_file_names(record)):
        try:
            if not storage.exists(f"{name}.metadata"):
                continue
            with storage.open(f"{name}.metadata", "rb") as handle:
                described = json.loads(handle.read())
        except (FileNotFoundError, ValueError):
            continue
        if isinstance(described, dict) and described.get("started_at") == record.started_at.isoformat():
            return name, described
    return None


def update_description(name: str, changes: dict, storage=None) -> None:
    """Write `changes` into the metadata beside `name` (a storage never overwrites: delete, then save)."""
    from django.core.files.base import ContentFile

    storage = storage or backup_storage()
    path = f"{name}.metadata"
    with storage.open(path, "rb") as handle:
        described = json.loads(handle.read())
    described.update(changes)
    storage.delete(path)
    storage.save(path, ContentFile(json.dumps(described, indent=2, sort_keys=True).encode()))


STORAGE_ALIAS = "dbbackup"


PG_DUMP_CONNECTOR = "dbbackup.db.postgresql.PgDumpBinaryConnector"


CHUNK = 1024 * 1024


def dump_connector(alias: str):
    """Return django-dbbackup's connector for `alias`; pg_dump's for dbops' engine.

    django-dbbackup maps engines to connectors by name and falls back to dumpdata for names it does not know.
    """
    engine = connections[alias].settings_dict["ENGINE"]
    return get_connector(alias, connector_path=PG_DUMP_CONNECTOR if engine == DBOPS_POSTGRES_ENGINE else None)


def backup_storage():
    storage = storages[STORAGE_ALIAS]
    if isinstance(storage, FileSystemStorage):
        _make_parent_folders(storage)
    return storage


def local_copy_storage() -> FileSystemStorage | None:
    """Return DATABASE_BACKUP_DIR's storage when each backup also keeps a local copy beside the bucket, else None."""
    config = get_config()
    if config.backup_s3 is None or not config.backup_local_copy_days:
        return None
    return _make_parent_folders(FileSystemStorage(**config.local_backup_storage()["OPTIONS"]))


def _make_parent_folders(storage: FileSystemStorage) -> FileSystemStorage:
    """Create the backup folder's parents with the usual mode before the storage creates them 0700.

    Django's storage makes every missing folder on the way with its `directory_permissions_mode`: a `var/` made
    0700 for the backups kept pgBackRest's OS user from its own `var/pgbackrest/pgbackrest.conf`. Only the backup
    folder itself needs to be private.
    """
    with contextlib.suppress(OSError):  # a path that cannot be made fails where the backup is saved, and is recorded
        Path(storage.location).parent.mkdir(parents=True, exist_ok=True)
    _tighten(Path(storage.location))
    return storage


def _tighten(folder: Path) -> None:
    """Make an existing backup folder private again (0700): dumps hold password hashes and session keys."""
    try:
        mode = folder.stat().st_mode & 0o777
        if mode & 0o077:
            folder.chmod(0o700)
            log_event(logger, logging.WARNING, "backup_folder_tightened", folder=str(folder), was=oct(mode))
    except OSError:
        return  # missing (made private when first used) or not ours to change: the save says what is wrong


def hash_file(handle) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    handle.seek(0)
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(0)
    return digest.hexdigest(), size


def delete_files(name: str | None, storage=None) -> None:
    """Delete a backup file and its metadata; one already gone is fine, a storage that fails raises."""
    if not name:
        return
    storage = storage or backup_storage()
    for path in (name, f"{name}.metadata"):
        with contextlib.suppress(FileNotFoundError):
            if storage.exists(path):
                storage.delete(path)


def discard_files(name: str | None, storage=None) -> None:
    """Best-effort `delete_files` while cleaning up after a failure (the failure is what gets reported)."""
    with contextlib.suppress(Exception):
        delete_files(name, storage)


def safe_error(exc: BaseException) -> str:
    return mask_url(str(exc)).strip()[-4000:] or type(exc).__name__

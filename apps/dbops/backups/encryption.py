"""Backups encrypted at rest with age, through pyrage: to public keys at backup time, with an identity to read.

Why age (pyrage) rather than GnuPG: no keyring or agent on the host and no external binary to call, keys short
enough for an environment variable (`age1...`, or an `ssh-ed25519` public key), streaming authenticated
encryption, and a maintained binding of the reference implementation (rage). Only public keys live on the web
hosts; the identity that decrypts is needed where backups are verified or restored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO

import pyrage
from pyrage import ssh, x25519

from dbops.conf.age_keys import parse_recipient
from dbops.exceptions import BackupKeyError
from dbops.logs import log_event

logger = logging.getLogger("dbops.backups")

SPOOL_BYTES = 16 * 1024 * 1024
SUFFIX = ".age"


def encrypt(plain: IO[bytes], recipients: tuple[str, ...]) -> SpooledTemporaryFile:
    """Encrypt `plain` from its start to every recipient; return the ciphertext, rewound."""
    plain.seek(0)
    sealed = SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned open to the caller
    pyrage.encrypt_io(plain, sealed, [parse_recipient(r) for r in recipients])
    sealed.seek(0)
    return sealed


def _identities(identity_file: Path | None, backup_id: int) -> list:
    if identity_file is None:
        raise BackupKeyError(
            f"backup #{backup_id} is encrypted: set DATABASE_BACKUP_ENCRYPTION_IDENTITY_FILE to the age identity "
            "file whose public key it was encrypted to"
        )
    try:
        mode = identity_file.stat().st_mode & 0o777
        text = identity_file.read_text()
    except OSError as exc:
        raise BackupKeyError(
            f"backup #{backup_id} is encrypted, but the identity file {identity_file} cannot be read "
            f"({exc.strerror or type(exc).__name__})"
        ) from None
    _refuse_shared_key(identity_file, mode)
    if "BEGIN OPENSSH PRIVATE KEY" in text:  # an SSH key: the recipients may be ssh-ed25519 / ssh-rsa public keys
        try:
            return [ssh.Identity.from_buffer(text.encode())]
        except Exception:
            raise BackupKeyError(
                f"the identity file {identity_file} is an SSH private key age cannot use (a passphrase-protected "
                "key is not supported: decrypt with an unprotected copy kept as safely)"
            ) from None
    identities = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                identities.append(x25519.Identity.from_str(line.strip()))
            except pyrage.IdentityError:
                raise BackupKeyError(
                    f"the identity file {identity_file} holds a line that is not an age secret key "
                    "(AGE-SECRET-KEY-1...) or an OpenSSH private key"
                ) from None
    if not identities:
        raise BackupKeyError(f"the identity file {identity_file} holds no age secret key (AGE-SECRET-KEY-1...)")
    return identities


def _refuse_shared_key(identity_file: Path, mode: int) -> None:
    """Refuse a key others can read in staging/production (as ssh refuses one); warn about it elsewhere."""
    if not mode & 0o077:
        return
    from dbops.conf import get_config

    if get_config().is_strict:
        raise BackupKeyError(
            f"the identity file {identity_file} can be read by other users (mode {oct(mode)}): "
            f"chmod 600 {identity_file} (it decrypts every backup)"
        )
    log_event(logger, logging.WARNING, "identity_file_shared", file=str(identity_file), mode=oct(mode))


def decrypt(sealed: IO[bytes], *, identity_file: Path | None, backup_id: int) -> SpooledTemporaryFile:
    """Decrypt `sealed` from its start with the identities in `identity_file`; return the plaintext, rewound."""
    identities = _identities(identity_file, backup_id)
    sealed.seek(0)
    plain = SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned open to the caller
    try:
        pyrage.decrypt_io(sealed, plain, identities)
    except pyrage.DecryptError:
        raise BackupKeyError(
            f"backup #{backup_id} cannot be decrypted with the identity in {identity_file}: it was encrypted to "
            "another key (or the file is damaged)"
        ) from None
    plain.seek(0)
    return plain

"""Backups encrypted at rest with age, through pyrage: to public keys at backup time, with an identity to read.

Why age (pyrage) rather than GnuPG: no keyring or agent on the host and no external binary to call, keys short
enough for an environment variable (`age1...`, or an `ssh-ed25519` public key), streaming authenticated
encryption, and a maintained binding of the reference implementation (rage). Only public keys live on the web
hosts; the identity that decrypts is needed where backups are verified or restored.
"""

from __future__ import annotations

from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO

import pyrage
from pyrage import x25519

from dbops.conf.age_keys import parse_recipient
from dbops.exceptions import BackupKeyError

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
        lines = identity_file.read_text().splitlines()
    except OSError as exc:
        raise BackupKeyError(
            f"backup #{backup_id} is encrypted, but the identity file {identity_file} cannot be read "
            f"({exc.strerror or type(exc).__name__})"
        ) from None
    identities = []
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                identities.append(x25519.Identity.from_str(line.strip()))
            except pyrage.IdentityError:
                raise BackupKeyError(
                    f"the identity file {identity_file} holds a line that is not an age secret key "
                    "(AGE-SECRET-KEY-1...)"
                ) from None
    if not identities:
        raise BackupKeyError(f"the identity file {identity_file} holds no age secret key (AGE-SECRET-KEY-1...)")
    return identities


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

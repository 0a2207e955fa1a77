"""age public keys as settings values: parsed once, where backups' encryption recipients are validated."""

from __future__ import annotations

import pyrage
from pyrage import ssh, x25519


def parse_recipient(text: str):
    """Return an age recipient for `age1...` or an SSH public key; raise ValueError for anything else."""
    for kind in (x25519.Recipient, ssh.Recipient):
        try:
            return kind.from_str(text.strip())
        except pyrage.RecipientError:
            continue
    raise ValueError("not an age (age1...) or SSH (ssh-ed25519/ssh-rsa) public key")

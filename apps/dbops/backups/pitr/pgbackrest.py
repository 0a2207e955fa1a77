"""Running pgBackRest as the server's OS user, and reading what it answers (its ERROR line, `info` JSON)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from dbops.backups.pitr.target import PitrError, PitrTarget
from dbops.conf import mask_url
from dbops.osuser import run_as


def pgbackrest_argv(binary: str, target: PitrTarget, *args: str) -> list[str]:
    """Return pgBackRest's command line: dbops' config file and stanza first (no password: it goes as PGPASSWORD)."""
    return [binary, f"--config={target.config_file}", f"--stanza={target.stanza}", *args]


def run_pgbackrest(
    target: PitrTarget, *args: str, timeout: float = 600, text: bool = True
) -> subprocess.CompletedProcess:
    binary = shutil.which("pgbackrest")
    if binary is None:
        raise PitrError("pgbackrest is not installed: install it on the database host (Debian: apt install pgbackrest)")
    try:
        return run_as(
            target.os_user,
            pgbackrest_argv(binary, target, *args),
            timeout=timeout,
            password=target.pg_password,
            text=text,
        )
    except subprocess.TimeoutExpired:
        raise PitrError(f"pgbackrest {args[0]} did not finish within {timeout:g} s") from None


def failure(result: subprocess.CompletedProcess[str]) -> str:
    """Say why pgBackRest failed: its ERROR line (the cause), not the HINT or DETAIL that often comes last."""
    text = [line.strip() for line in (result.stderr or result.stdout or "").strip().splitlines() if line.strip()]
    errors = [line for line in text if "ERROR:" in line]
    chosen = errors[0] if errors else (text[-1] if text else f"exit {result.returncode}")
    hints = [line for line in text if line.startswith("HINT:")]
    return mask_url(chosen + (f" ({hints[0]})" if hints and hints[0] != chosen else ""))[:500]


def stanza_info(target: PitrTarget) -> dict | None:
    result = run_pgbackrest(target, "info", "--output=json", timeout=60)
    if result.returncode != 0:
        return None
    stanzas = json.loads(result.stdout or "[]")
    return next((s for s in stanzas if s.get("name") == target.stanza), None)


# pgBackRest's stanza status codes that mean "create the stanza" (missing path, missing data).
STANZA_MISSING = (1, 3)


_S3_ERROR = re.compile(r"<Code>(.*?)</Code>\s*<Message>(.*?)</Message>", re.S)


def repository_problem(info: dict) -> str:
    """Return why pgBackRest cannot read the repository (an unreachable store, no bucket), or ""."""
    if info.get("status", {}).get("code") != 99:  # 99: "other", the repository itself failed
        return ""
    for repo in info.get("repo", []):
        message = repo.get("status", {}).get("message", "")
        if repo.get("status", {}).get("code") == 99 and message:
            store = _S3_ERROR.search(message)
            first = message.strip().splitlines()[0].rstrip(":")
            return mask_url(first + (f": {store.group(1)}: {store.group(2)}" if store else ""))[:500]
    return str(info["status"].get("message", "repository error"))

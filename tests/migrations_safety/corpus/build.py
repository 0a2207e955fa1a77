"""The real-world corpus, built once and cached: a virtualenv with the packages, the schema their migrations make.

- `corpus_python()`: a virtualenv with requirements.txt and corpus/requirements.txt (pinned, `--no-deps`), cached
  under ~/.cache/dbops/migration-corpus/<key> (key: both files and the Python version). Building it downloads the
  packages once (about a minute); later runs, CI included, reuse it.
- `corpus_schema()`: the schema every migration of the scratch site (site_settings.py) makes, as `pg_dump
  --schema-only`, cached beside it (key: the venv, dbops' own migrations, the site). Running the 320 migrations
  takes ~40 s; restoring the dump ~2 s.
- `make_pending_and_big()`: every table reports 2,000,000 rows (`reltuples`) and no migration is recorded as
  applied: an upgrade of every package at once on a big site, which is what the report grades.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from tests import PROJECT_DIR

CORPUS_DIR = Path(__file__).resolve().parent
PINS = CORPUS_DIR / "requirements.txt"
SETTINGS_MODULE = "tests.migrations_safety.corpus.site_settings"
CACHE_ROOT = Path(os.environ.get("DBOPS_CORPUS_CACHE", Path.home() / ".cache" / "dbops" / "migration-corpus"))
ROWS = 2_000_000


def _digest(*paths: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


@contextmanager
def _locked(folder: Path):
    """One builder at a time (two test runs on one machine share the cache)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(args: list, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))[:200]} failed: {result.stdout[-1500:]}{result.stderr[-3000:]}")
    return result


def corpus_python() -> Path:
    """Return the corpus virtualenv's python, building the virtualenv first when it is not cached."""
    key = _digest(PROJECT_DIR / "requirements.txt", PINS, extra=sys.version)
    folder = CACHE_ROOT / f"venv-{key}"
    python = folder / "bin" / "python"
    with _locked(folder):
        if (folder / ".complete").exists():
            return python
        shutil.rmtree(folder, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(folder)])
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run([*pip, "-r", str(PROJECT_DIR / "requirements.txt")], timeout=900)
        _run([*pip, "--no-deps", "-r", str(PINS)], timeout=900)
        _run([str(python), "-m", "pip", "check"])
        (folder / ".complete").write_text(key)
    return python


def corpus_environ(database_url: str) -> dict[str, str]:
    """Return the scratch site's environment: dbops from this checkout, nothing of the test run's own settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_", "DBOPS_", "PYTHONPATH"))}
    return {
        **env,
        "PYTHONPATH": f"{PROJECT_DIR / 'apps'}{os.pathsep}{PROJECT_DIR}",
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DJANGO_ENV": "development",
        "DATABASE_URL": database_url,
    }


def manage(python: Path, database_url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "django", *args],
        cwd=PROJECT_DIR,
        env=corpus_environ(database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def corpus_schema(python: Path, database_url: str, bindir: Path) -> Path:
    """Return the cached schema dump of the fully migrated scratch site; `database_url` (empty) is used to make it."""
    site = CORPUS_DIR / "site_settings.py"
    key = _digest(python.parent.parent / ".complete", PROJECT_DIR / "apps" / "dbops" / "migrations", site)
    dump = CACHE_ROOT / f"schema-{key}.sql"
    with _locked(dump):
        if dump.exists():
            return dump
        migrated = manage(python, database_url, "migrate", "--noinput", "-v0", timeout=600)
        if migrated.returncode != 0:
            raise RuntimeError(f"migrate failed: {migrated.stdout[-1500:]}{migrated.stderr[-3000:]}")
        partial = dump.with_suffix(".partial")
        _run(
            [
                str(bindir / "pg_dump"),
                "--schema-only",
                "--no-owner",
                "--no-privileges",
                "-f",
                str(partial),
                database_url,
            ]
        )
        partial.rename(dump)
    return dump


def make_pending_and_big(conn) -> None:
    """Every table reports ROWS rows; no migration is recorded as applied (all of them pending)."""
    conn.execute(
        """
        UPDATE pg_class c SET reltuples = %s FROM pg_namespace n
        WHERE n.oid = c.relnamespace AND n.nspname = 'public' AND c.relkind = 'r'
        """,
        [ROWS],
    )
    conn.execute("DELETE FROM django_migrations")

"""The disaster-recovery drill: recovery.md's new-machine runbook, run as written, with only the bucket and the key.

The old site backs up (encrypted, to a real S3-compatible server) and verifies; then "the machine is gone": a new
cluster with an empty database and nothing but the bucket's settings and the age identity. The runbook's lines
run there verbatim (`python` is this virtualenv's); every table's content must come back exactly, and the
restored history must tell the truth about the bucket's objects.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pyrage import x25519

from dbops.backups import logical as backups
from dbops.localdb import throwaway_cluster
from dbops.models import BackupRecord
from tests import PROJECT_DIR
from tests.backups.conftest import content_hashes
from tests.backups.test_s3 import BUCKET, use_bucket
from tests.factories import UserFactory
from tests.parts.servers import S3Server

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


def runbook(marker: str) -> list[str]:
    """Return the command lines of the fenced block after `<!-- runbook: marker` in docs/recovery.md."""
    text = (PROJECT_DIR / "docs" / "recovery.md").read_text()
    found = re.search(rf"<!-- runbook: {re.escape(marker)}\b[^>]*-->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert found, f"docs/recovery.md has no runbook block {marker!r}"
    return [line for line in found.group(1).splitlines() if line.strip() and not line.startswith("#")]


def hashes_of(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = backups.user_tables(conn)
        result = {}
        for schema, table in tables:
            if table.startswith("dbops_"):
                continue  # dbops' history: its records end as they ended, which the test checks itself
            query = sql.SQL("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t")
            result[f"{schema}.{table}"] = conn.execute(query.format(sql.Identifier(schema, table))).fetchone()[0]
        return result


def test_drill__the_new_machine_runbook_restores_from_the_bucket_alone(settings, s3_server, tmp_path):
    s3_server.client().create_bucket(Bucket=BUCKET)
    use_bucket(settings, s3_server)
    identity = x25519.Identity.generate()
    key_file = tmp_path / "backup-key.txt"
    key_file.write_text(f"{identity}\n")
    key_file.chmod(0o600)
    import dataclasses

    signing_key = "drill-signing-key-0123456789-abcdefghij"
    settings.DBOPS = dataclasses.replace(
        settings.DBOPS,
        backup_encryption_recipients=(str(identity.to_public()),),
        backup_encryption_identity_file=key_file,
        backup_signing_key=signing_key,
    )
    UserFactory.create_batch(25)
    older = backups.verify_backup(backups.take_backup())
    UserFactory.create_batch(5)
    newest = backups.verify_backup(backups.take_backup())
    assert older.verification == newest.verification == BackupRecord.Verification.PASSED
    unverified = backups.take_backup()  # newer, but never verified: the runbook must not pick it
    expected = {table: digest for table, digest in content_hashes().items() if not table.startswith("public.dbops_")}

    with throwaway_cluster() as cluster:  # the new machine: its own server, an empty database, no history
        cluster.ensure_database("site")
        url = cluster.url("site")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))}
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            DJANGO_ENV="test",
            DATABASE_URL=url,
            DATABASE_BACKUP_S3_BUCKET=BUCKET,
            DATABASE_BACKUP_S3_PREFIX="site/backups/",
            DATABASE_BACKUP_S3_ENDPOINT_URL=s3_server.url,
            DATABASE_BACKUP_S3_ACCESS_KEY_ID=S3Server.ACCESS_KEY,
            DATABASE_BACKUP_S3_SECRET_ACCESS_KEY=S3Server.SECRET_KEY,
            DATABASE_BACKUP_ENCRYPTION_RECIPIENTS=str(identity.to_public()),
            DATABASE_BACKUP_ENCRYPTION_IDENTITY_FILE=str(key_file),
            DATABASE_BACKUP_SIGNING_KEY=signing_key,
        )
        outputs = []
        for line in runbook("new-machine"):
            result = subprocess.run(  # noqa: S603 - the runbook's own lines, no shell
                shlex.split(line), cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300, check=False
            )
            assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stderr, result.stderr
            assert S3Server.SECRET_KEY not in result.stdout + result.stderr
            outputs.append(result.stdout)

        listing = outputs[0]
        assert newest.filename in listing and unverified.filename in listing and "not verified" in listing
        assert f"Restored {newest.filename}" in outputs[1]
        assert hashes_of(url) == expected  # every table's content, exactly

        with psycopg.connect(url, autocommit=True) as conn:
            history = dict(conn.execute("SELECT id, status FROM dbops_backuprecord").fetchall())
            restored_file = conn.execute(
                "SELECT filename FROM dbops_backuprecord WHERE id = %s", [newest.pk]
            ).fetchone()
        # The dump held its own record while it was running: it ends as succeeded, with its file.
        assert history[newest.pk] == "succeeded" and restored_file[0] == newest.filename
        assert history[older.pk] == "succeeded" and unverified.pk not in history  # taken after the dump

        again = subprocess.run(  # a second restore into the now full database is refused, nothing touched
            shlex.split(runbook("new-machine")[1]),
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert again.returncode == 1 and "is not empty" in again.stderr, again.stderr
        listed = subprocess.run(
            [sys.executable, "manage.py", "backup_restore", "--from-storage", "--json"],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        verified = {entry["name"]: entry["verified"] for entry in json.loads(listed.stdout)}
        assert verified == {older.filename: True, newest.filename: True, unverified.filename: False}

        # The new machine's history tells the truth about every object, and prune deletes none of them.
        def manage_json(*args: str) -> dict:
            done = subprocess.run(
                [sys.executable, "manage.py", *args, "--json"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True
            )
            assert done.returncode in (0, 1), done.stderr  # backup_list exits 1 when a backup is due
            return json.loads(done.stdout)

        pruned = manage_json("backup_prune", "--dry-run")
        assert pruned["backups"] == [] and pruned["orphans"] == []
        assert unverified.filename in pruned["kept_unproven"]  # taken after the dump: no record here, kept
        status = manage_json("backup_list")
        assert status["newest_verified"]["remote"]["id"] == older.pk  # verified before the dump, still in the bucket
        restored_entry = next(entry for entry in status["recent"] if entry["id"] == newest.pk)
        assert restored_entry["status"] == "succeeded" and restored_entry["file"] == newest.filename
        assert restored_entry["local_copy"] is None

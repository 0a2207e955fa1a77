"""Backup and verification cost vs the raw tools, on a generated database (issue: verified backups).

Generates >= 1,000,000 rows, then in interleaved rounds times:
  backup   dbops `take_backup` (snapshot row counts + pg_dump -Fc + sha256 + record)  vs  raw `pg_dump -Fc`
  verify   dbops `verify_backup` (sha256 + scratch DB + pg_restore + row counts)        vs  raw `pg_restore` into a
           freshly created scratch database
  remote   the same dbops backup and verify with the bucket of an S3-compatible server on loopback (moto's, from
           requirements-dev.txt) vs the local folder, interleaved: the cost of leaving the machine
Targets: backup <= 1.10x, verify <= 1.2x, remote <= 1.3x local (no staging copy).
Run: .venv/bin/python bench/backup.py [--rounds 3] [--rows 1200000]
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

from harness import median, parser, postgres, setup_django

from tests.parts.servers import S3Server, s3_server_available


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rows", type=int, default=1_200_000, help="Rows to generate (two tables).")
    args = p.parse_args()
    rounds, rows = (1, 10_000) if args.smoke else (args.rounds, args.rows)
    with tempfile.TemporaryDirectory() as folder, postgres(DATABASE_BACKUP_DIR=folder) as url:
        setup_django()
        from django.db import connection

        from dbops.backups import logical as backups

        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_events, bench_accounts")
            cursor.execute("CREATE TABLE bench_accounts (id bigint PRIMARY KEY, name text, balance numeric)")
            cursor.execute(
                "INSERT INTO bench_accounts SELECT i, 'account-' || i, i * 1.5 FROM generate_series(1, %s) i",
                [rows // 6],
            )
            cursor.execute(
                "CREATE TABLE bench_events (id bigint PRIMARY KEY, account_id bigint, payload text, at timestamptz)"
            )
            cursor.execute(
                "INSERT INTO bench_events SELECT i, i %% %s + 1, md5(i::text) || md5((i * 7)::text) || repeat('x', 40),"
                " now() - i * interval '1 second' FROM generate_series(1, %s) i",
                [rows // 6, rows - rows // 6],
            )
            cursor.execute("VACUUM ANALYZE bench_events, bench_accounts")
        connection.close()
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
        dump_path = os.path.join(folder, "raw.dump")
        times: dict[str, list[float]] = {"pg_dump": [], "backup": [], "pg_restore": [], "verify": []}
        size = 0
        for r in range(rounds):
            for step in ("pg_dump", "backup") if r % 2 == 0 else ("backup", "pg_dump"):
                started = time.perf_counter()
                if step == "pg_dump":
                    subprocess.run(
                        ["pg_dump", "--format=custom", f"--dbname={url}", "-f", dump_path], check=True, env=env
                    )
                else:
                    record = backups.take_backup()
                    size = record.size_bytes
                times[step].append(time.perf_counter() - started)
            for step in ("pg_restore", "verify") if r % 2 == 0 else ("verify", "pg_restore"):
                started = time.perf_counter()
                if step == "pg_restore":
                    scratch = f"bench_raw_restore_{r}"
                    admin_url = url.rsplit("/", 1)[0] + "/postgres"
                    subprocess.run(
                        ["psql", admin_url, "-qc", f"CREATE DATABASE {scratch} TEMPLATE template0"], check=True, env=env
                    )
                    subprocess.run(
                        [
                            "pg_restore",
                            f"--dbname={url.rsplit('/', 1)[0]}/{scratch}",
                            "--single-transaction",
                            dump_path,
                        ],
                        check=True,
                        env=env,
                    )
                    subprocess.run(
                        ["psql", admin_url, "-qc", f"DROP DATABASE {scratch} WITH (FORCE)"], check=True, env=env
                    )
                else:
                    verified = backups.verify_backup(record)
                    assert verified.verification == "passed", verified.verification_details
                times[step].append(time.perf_counter() - started)
        remote = _remote_vs_local(rounds) if s3_server_available() else None
    dump, backup = median(times["pg_dump"]), median(times["backup"])
    restore, verify = median(times["pg_restore"]), median(times["verify"])
    print(f"backup benchmark: {rows} rows, dump {size / 1e6:.1f} MB, {rounds} interleaved rounds (medians)")
    print(f"  pg_dump -Fc      {dump:7.2f} s")
    print(f"  dbops backup     {backup:7.2f} s   ratio {backup / dump:.3f}x")
    print(f"  pg_restore       {restore:7.2f} s   (create scratch + restore + drop)")
    print(f"  dbops verify     {verify:7.2f} s   ratio {verify / restore:.3f}x")
    if remote is None:
        print("  remote: left out (moto's server not installed: pip install -r requirements-dev.txt)")
        return
    for step in ("backup", "verify"):
        local, bucket = median(remote[f"local {step}"]), median(remote[f"bucket {step}"])
        print(f"  {step} to/from the bucket {bucket:7.2f} s vs local {local:7.2f} s   ratio {bucket / local:.3f}x")


def _remote_vs_local(rounds: int) -> dict[str, list[float]]:
    """Time dbops' backup and verify against a bucket (S3 API on loopback) and the local folder, interleaved."""
    import dataclasses

    from django.conf import settings
    from django.test.utils import override_settings

    from dbops.backups import logical as backups
    from dbops.conf.config import BackupS3Config

    server = S3Server()
    try:
        server.client().create_bucket(Bucket="bench")
        s3 = BackupS3Config("bench", "bench/", server.url, "us-east-1", S3Server.ACCESS_KEY, S3Server.SECRET_KEY)
        bucket_config = dataclasses.replace(settings.DBOPS, backup_s3=s3)
        places = {
            "local": {},
            "bucket": {
                "DBOPS": bucket_config,
                "STORAGES": {**settings.STORAGES, "dbbackup": bucket_config.backup_storage()},
            },
        }
        times: dict[str, list[float]] = {}
        for r in range(rounds):
            for place in ("local", "bucket") if r % 2 == 0 else ("bucket", "local"):
                with override_settings(**places[place]):
                    started = time.perf_counter()
                    record = backups.take_backup()
                    times.setdefault(f"{place} backup", []).append(time.perf_counter() - started)
                    started = time.perf_counter()
                    assert backups.verify_backup(record).verification == "passed"
                    times.setdefault(f"{place} verify", []).append(time.perf_counter() - started)
        return times
    finally:
        server.stop()


if __name__ == "__main__":
    main()

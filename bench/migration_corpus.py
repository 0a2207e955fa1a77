"""The real-world corpus: dbops vs django-migration-linter vs squawk on the migrations real packages ship.

The scratch site of tests/migrations_safety/corpus (wagtail, django-allauth, django CMS, django-filer, celery
results/beat, taggit, oauth-toolkit, guardian, reversion, constance, axes: 320 migrations of 41 apps) in its cached
virtualenv, every table reporting 2,000,000 rows and every migration pending. Timed in interleaved rounds (wall time
of the whole command, Django start-up included): `manage.py migration_report --json` against
`manage.py lintmigrations APP --no-cache` for every app, and Django's SQL for every migration (bench/sqlmigrate_all.py
--all, one process) linted by squawk. Printed: time, migrations flagged, blocks, crashes (an app the linter aborts on,
a migration whose SQL cannot be rendered for squawk).
Targets (issue #26): dbops' whole run under 5 s, no crash.
Run: .venv/bin/python bench/migration_corpus.py [--rounds 3]
(django-migration-linter is installed beside the corpus virtualenv; squawk-cli comes from requirements-bench.txt.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import PROJECT_DIR, median, parser, postgres
from migration_analysis import lint_sql, squawk_binary

from dbops.localdb import find_bindir
from tests.migrations_safety.corpus.build import (
    CACHE_ROOT,
    corpus_environ,
    corpus_python,
    corpus_schema,
    make_pending_and_big,
)

LINTER = ("django-migration-linter==6.0.0", "appdirs==1.4.4", "toml==0.10.2")  # the linter and what it needs
LINTER_LINE = re.compile(r"^\((\w+), (\w+)\)\.\.\. (ERR|WARNING|OK)")


def linter_path() -> Path:
    """Install django-migration-linter in a folder of its own beside the corpus cache (kept as the tests use it)."""
    folder = CACHE_ROOT / "linter-6.0.0"
    if not (folder / "appdirs.py").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(folder), *LINTER],
            check=True,
        )
    return folder


def run(
    python: Path, url: str, args: list[str], extra_path: Path | None = None
) -> tuple[float, subprocess.CompletedProcess]:
    env = corpus_environ(url)
    if extra_path is not None:
        env["PYTHONPATH"] = f"{env['PYTHONPATH']}{os.pathsep}{extra_path}"
        env["CORPUS_EXTRA_APPS"] = "django_migration_linter"
    started = time.perf_counter()
    done = subprocess.run([str(python), *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done


def dbops(python: Path, url: str) -> tuple[float, dict]:
    seconds, done = run(python, url, ["-m", "django", "migration_report", "--json"])
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise SystemExit(f"migration_report failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def linter(python: Path, url: str, apps: list[str]) -> tuple[float, set[str], list[str]]:
    """Lint every app (one process each, as the linter is used per app): time, flagged migrations, crashed apps."""
    seconds, flagged, crashed = 0.0, set(), []
    path = linter_path()
    for app in apps:
        took, done = run(python, url, ["-m", "django", "lintmigrations", app, "--no-cache"], path)
        seconds += took
        if "Traceback" in done.stderr:
            crashed.append(app)
        for line in done.stdout.splitlines():
            if (match := LINTER_LINE.match(line)) and match.group(3) != "OK":
                flagged.add(f"{match.group(1)}.{match.group(2)}")
    return seconds, flagged, crashed


def squawk(python: Path, url: str, folder: Path) -> tuple[float, float, int, set[str], set[str]]:
    """Return (sqlmigrate seconds, squawk seconds, migrations not rendered, flagged, flagged without timeouts)."""
    sqlmigrate, done = run(python, url, [str(PROJECT_DIR / "bench" / "sqlmigrate_all.py"), "--all", str(folder)])
    if done.returncode != 0:
        raise SystemExit(f"sqlmigrate_all failed: {done.stderr[-2000:]}")
    failed = int(done.stdout.split()[-1])
    seconds, flagged, substantive = lint_sql(folder)
    return sqlmigrate, seconds, failed, flagged, substantive


def prepare(python: Path, server_url: str) -> str:
    """Create the corpus database on the benchmark's server: the cached schema, every table big, all pending."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_corpus WITH (FORCE)")
        conn.execute(sql.SQL("CREATE DATABASE bench_corpus"))
    url = server_url.rsplit("/", 1)[0] + "/bench_corpus"
    bindir = find_bindir()
    dump = corpus_schema(python, url, bindir)
    with psycopg.connect(url, autocommit=True) as conn:
        migrated = conn.execute("SELECT to_regclass('public.django_migrations') IS NOT NULL").fetchone()[0]
    if not migrated:
        subprocess.run([str(bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-f", str(dump), url], check=True)
    with psycopg.connect(url, autocommit=True) as conn:
        make_pending_and_big(conn)
    return url


def main() -> None:
    p = parser(__doc__)
    args = p.parse_args()
    rounds = 1 if args.smoke else (args.rounds if args.rounds != 8 else 3)
    python = corpus_python()
    has_squawk = squawk_binary() is not None
    with postgres() as server_url, tempfile.TemporaryDirectory() as folder:
        url = prepare(python, server_url)
        timings: dict[str, list[float]] = {}
        report: dict = {}
        for number in range(rounds):
            wall, report = dbops(python, url)
            timings.setdefault("dbops", []).append(wall)
            timings.setdefault("dbops analysis", []).append(report["analysis_seconds"])
            if number == 0:  # the linter and squawk are measured once: they take minutes, not seconds
                apps = sorted({m["migration"].split(".")[0] for m in report["migrations"]})
                apps = apps[:2] if args.smoke else apps
                seconds, linted, crashed = linter(python, url, apps)
                timings["linter"] = [seconds]
                if has_squawk and not args.smoke:  # Django renders every migration's SQL: half a minute
                    sqlmigrate, linting, failed, flagged, substantive = squawk(python, url, Path(folder) / "sql")
                    timings["sqlmigrate"], timings["squawk"] = [sqlmigrate], [linting]

    migrations = report["migrations"]
    ours = {m["migration"] for m in migrations if m["findings"]}
    blocks = {m["migration"] for m in migrations if m["grade"] == "block"}
    every_app = {m["migration"].split(".")[0] for m in migrations}
    print(
        f"real corpus: {len(migrations)} migrations of {len(every_app)} apps (linter on {len(apps)}), {rounds} round(s)"
    )
    for name, values in timings.items():
        print(f"  {name:<16} {median(values):8.3f} s")
    print(f"dbops: {len(ours)} migrations with findings, {len(blocks)} graded block, 0 crashes (exit 0/1)")
    print(f"linter: {len(linted)} migrations flagged, crashed on {len(crashed)} app(s) {crashed[:8]}")
    graph = {m["migration"] for m in migrations}
    replaced = sorted(linted - graph)  # files a squashed migration replaces: Django never runs them here
    missed = sorted((linted & graph) - ours)
    print(f"  flagged by the linter, no finding from dbops: {len(missed)} {missed[:5]} (and {len(replaced)} files a "
          "squashed migration replaces, which Django never runs)")  # fmt: skip
    print(
        f"time ratio linter/dbops (wall, all apps linted): {median(timings['linter']) / median(timings['dbops']):.1f}x"
    )
    if has_squawk and not args.smoke:
        print(
            f"squawk: {len(flagged)} migrations flagged ({len(substantive)} without its timeout rules), "
            f"{failed} migration(s) Django could not render as SQL here; time ratio (sqlmigrate + squawk)/dbops: "
            f"{(median(timings['sqlmigrate']) + median(timings['squawk'])) / median(timings['dbops']):.1f}x"
        )
        unseen = sorted(blocks - substantive)
        print(f"  graded block by dbops, not flagged by squawk's substantive rules: {len(unseen)} {unseen[:5]}")
    else:
        print("squawk left out (--smoke, or not installed: pip install -r requirements-bench.txt)")


if __name__ == "__main__":
    main()

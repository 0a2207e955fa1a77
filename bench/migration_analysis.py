"""Migration analysis time and findings: dbops `migration_report` vs django-migration-linter and squawk.

Generates an app with N migrations (a rotation of: nullable column, plain index, NOT NULL column, RunPython
without reverse, type change, column removal, RunSQL without reverse, column rename) on a table that exists with
20,000 rows, then times, in interleaved rounds, `manage.py migration_report benchapp --all` against
`manage.py lintmigrations benchapp --no-cache` (wall time of the whole command, Django start-up included), for N
and N/2 (linearity), and compares which migrations each flags. A second app holds AddIndexConcurrently in an
atomic migration: the linter's outcome is printed next to ours. squawk (a PostgreSQL SQL linter) reads the SQL
`sqlmigrate` would print for each migration (bench/sqlmigrate_all.py writes it, timed apart): its time and the
migrations it flags are printed beside ours, with and without its lock/statement-timeout rules (migration_apply
sets both timeouts itself).
Targets: >= 14x faster at 500 migrations, linear, findings a superset of the linter's.
Run: .venv/bin/python bench/migration_analysis.py [--rounds 3] [--migrations 500]
(django-migration-linter and squawk-cli come from requirements-bench.txt, which `make bench` installs.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import PROJECT_DIR, median, parser, postgres, setup_django

HEADER = "from django.db import migrations, models\n\n\n"
LINTER_LINE = re.compile(r"^\((\w+), (\w+)\)\.\.\. (ERR|WARNING|OK)")


def _migration(name: str, previous: str | None, operations: str, *, atomic: bool = True, extra: str = "") -> str:
    dependencies = f"[('benchapp', '{previous}')]" if previous else "[]"
    flags = "" if atomic else "    atomic = False\n"
    return (
        f"{HEADER}{extra}class Migration(migrations.Migration):\n{flags}"
        f"    dependencies = {dependencies}\n    operations = [\n        {operations},\n    ]\n"
    )


def generate_app(root: Path, label: str, count: int) -> None:
    """Write `label` with `count` migrations rotating through eight kinds of operation on one table."""
    folder = root / label / "migrations"
    folder.mkdir(parents=True)
    (root / label / "__init__.py").write_text("")
    (folder / "__init__.py").write_text("")
    names = ["0001_initial"]
    fields = ["keep"]
    initial = (
        "migrations.CreateModel('Item', [('id', models.BigAutoField(primary_key=True)), "
        "('keep', models.TextField(null=True))])"
    )
    (folder / "0001_initial.py").write_text(_migration("0001_initial", None, initial).replace("benchapp", label))
    for number in range(2, count + 1):
        kind, extra = number % 8, ""
        if kind == 0:
            operation = f"migrations.AddField('item', 'f{number}', models.TextField(null=True))"
            fields.append(f"f{number}")
        elif kind == 1:
            operation = f"migrations.AddIndex('item', models.Index(fields=['{fields[-1]}'], name='idx{number}'))"
        elif kind == 2:
            operation = f"migrations.AddField('item', 'n{number}', models.IntegerField(default=0))"
            fields.append(f"n{number}")
        elif kind == 3:
            extra = "def forwards(apps, schema_editor):\n    pass\n\n\n"
            operation = "migrations.RunPython(forwards)"
        elif kind == 4:
            operation = f"migrations.AlterField('item', 'keep', models.CharField(max_length={100 + number}, null=True))"
            operation = (
                operation if number % 16 == 4 else "migrations.AlterField('item', 'keep', models.TextField(null=True))"
            )
        elif kind == 5 and len(fields) > 2:
            operation = f"migrations.RemoveField('item', '{fields.pop(1)}')"
        elif kind == 6:
            operation = "migrations.RunSQL('SELECT 1')"
        elif kind == 7 and len(fields) > 1:
            old = fields.pop()
            fields.append(f"r{number}")
            operation = f"migrations.RenameField('item', '{old}', 'r{number}')"
        else:
            operation = f"migrations.AddField('item', 'f{number}', models.TextField(null=True))"
            fields.append(f"f{number}")
        name = f"{number:04d}_step"
        (folder / f"{name}.py").write_text(
            _migration(name, names[-1], operation, extra=extra).replace("benchapp", label)
        )
        names.append(name)


def generate_concurrent_app(root: Path) -> None:
    folder = root / "crashapp" / "migrations"
    folder.mkdir(parents=True)
    (root / "crashapp" / "__init__.py").write_text("")
    (folder / "__init__.py").write_text("")
    create = (
        "migrations.CreateModel('Item', [('id', models.BigAutoField(primary_key=True)), ('n', models.TextField())])"
    )
    (folder / "0001_initial.py").write_text(_migration("0001_initial", None, create).replace("benchapp", "crashapp"))
    concurrent = "AddIndexConcurrently('item', models.Index(fields=['n'], name='crash_n_idx'))"
    extra = "from django.contrib.postgres.operations import AddIndexConcurrently\n\n\n"
    body = _migration("0002_index", "0001_initial", concurrent, extra=extra).replace("benchapp", "crashapp")
    (folder / "0002_index.py").write_text(body)


def manage(root: Path, apps: str, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.migration_settings",
        "BENCH_EXTRA_APPS": apps,
        "PYTHONPATH": os.pathsep.join([str(root), str(PROJECT_DIR)]),
    }
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our interpreter and manage.py
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args], env=env, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - started, done


def ours(root: Path, apps: str, label: str) -> tuple[float, float, set[str]]:
    seconds, done = manage(root, apps, "migration_report", label, "--all", "--json")
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise SystemExit(f"migration_report failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    flagged = {m["migration"].split(".", 1)[1] for m in report["migrations"] if m["findings"]}
    return seconds, report["analysis_seconds"], flagged


def linter(root: Path, apps: str, label: str) -> tuple[float, set[str], subprocess.CompletedProcess]:
    seconds, done = manage(root, apps, "lintmigrations", label, "--no-cache")
    flagged = {m.group(2) for line in done.stdout.splitlines() if (m := LINTER_LINE.match(line)) and m.group(3) != "OK"}
    return seconds, flagged, done


TIMEOUT_RULES = ("require-lock-timeout", "require-statement-timeout")


def squawk_binary() -> str | None:
    """Return squawk from PATH or beside this interpreter (a virtualenv's bin/ is often not on PATH)."""
    beside = Path(sys.executable).parent / "squawk"
    return shutil.which("squawk") or (str(beside) if beside.exists() else None)


def squawk(root: Path, apps: str, label: str) -> tuple[float, float, set[str], set[str]]:
    """Return (sqlmigrate seconds, squawk seconds, flagged migrations, flagged without the timeout rules)."""
    folder = root / f"sql-{label}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.migration_settings",
        "BENCH_EXTRA_APPS": apps,
        "PYTHONPATH": os.pathsep.join([str(root), str(PROJECT_DIR)]),
    }
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - our interpreter and script
        [sys.executable, str(PROJECT_DIR / "bench" / "sqlmigrate_all.py"), label, str(folder)],
        env=env,
        check=True,
        capture_output=True,
    )
    sqlmigrate = time.perf_counter() - started
    linting, flagged, substantive = lint_sql(folder)
    names = {key: {stem.split(".", 1)[1] for stem in stems} for key, stems in (("all", flagged), ("sub", substantive))}
    return sqlmigrate, linting, names["all"], names["sub"]


def lint_sql(folder: Path) -> tuple[float, set[str], set[str]]:
    """Run squawk on every .sql file of `folder`: (seconds, files flagged, flagged without the timeout rules)."""
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - the squawk binary from requirements-bench.txt
        [squawk_binary(), "--reporter", "json", "--pg-version", "15", *sorted(map(str, folder.glob("*.sql")))],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    issues = json.loads(done.stdout or "[]")
    flagged = {Path(issue["file"]).stem for issue in issues}
    substantive = {Path(issue["file"]).stem for issue in issues if issue["rule_name"] not in TIMEOUT_RULES}
    return seconds, flagged, substantive


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--migrations", type=int, default=500, help="Migrations in the large generated app.")
    args = p.parse_args()
    rounds, count = (1, 24) if args.smoke else (args.rounds if args.rounds != 8 else 3, args.migrations)
    has_linter = importlib.util.find_spec("django_migration_linter") is not None
    has_squawk = squawk_binary() is not None
    with tempfile.TemporaryDirectory() as folder, postgres() as _url:
        root = Path(folder)
        generate_app(root, "benchapp", count)
        generate_app(root, "halfapp", count // 2)
        generate_concurrent_app(root)
        apps = "benchapp,halfapp,crashapp"
        os.environ.update(DJANGO_SETTINGS_MODULE="bench.migration_settings", BENCH_EXTRA_APPS=apps)
        sys.path.insert(0, folder)
        setup_django(migrate=False)
        from django.core.management import call_command
        from django.db import connection

        for app in ("contenttypes", "auth", "admin", "sessions", "dbops"):
            call_command("migrate", app, verbosity=0)
        for label in ("benchapp", "halfapp"):
            call_command("migrate", label, "0001", verbosity=0)
            with connection.cursor() as cursor:
                cursor.execute(f"INSERT INTO {label}_item (keep) SELECT 'x' FROM generate_series(1, 20000)")  # noqa: S608
                cursor.execute(f"ANALYZE {label}_item")
        connection.close()

        crash = (_crash_summary(root, apps), linter(root, apps, "crashapp")[2] if has_linter else None)
        timings: dict[str, list[float]] = {}
        flagged: dict[str, set[str]] = {}
        for _ in range(rounds):
            for label, n in (("benchapp", count), ("halfapp", count // 2)):
                wall, analysis, found = ours(root, apps, label)
                timings.setdefault(f"dbops {n}", []).append(wall)
                timings.setdefault(f"dbops analysis {n}", []).append(analysis)
                flagged[f"dbops {n}"] = found
                if has_linter:
                    wall, found, _ = linter(root, apps, label)
                    timings.setdefault(f"linter {n}", []).append(wall)
                    flagged[f"linter {n}"] = found
                if has_squawk:
                    sqlmigrate, linting, found, substantive = squawk(root, apps, label)
                    timings.setdefault(f"sqlmigrate {n}", []).append(sqlmigrate)
                    timings.setdefault(f"squawk {n}", []).append(linting)
                    flagged[f"squawk {n}"], flagged[f"squawk substantive {n}"] = found, substantive

    print(f"migrations: {count} and {count // 2}, {rounds} interleaved round(s), medians (wall time incl. start-up)")
    for name, values in timings.items():
        print(f"  {name:<22} {median(values):8.3f} s")
    big, half = median(timings[f"dbops {count}"]), median(timings[f"dbops {count // 2}"])
    analysis_big, analysis_half = (
        median(timings[f"dbops analysis {count}"]),
        median(timings[f"dbops analysis {count // 2}"]),
    )
    scaling = f"wall {big / half:.2f}x, analysis {analysis_big / analysis_half:.2f}x"
    print(f"dbops scaling ratio {count}/{count // 2}: {scaling}")
    if has_squawk:
        squawk_big = median(timings[f"sqlmigrate {count}"]) + median(timings[f"squawk {count}"])
        print(
            f"dbops vs sqlmigrate + squawk at {count}: {squawk_big / big:.1f}x faster (squawk alone "
            f"{median(timings[f'squawk {count}']):.3f} s); migrations flagged: dbops {len(flagged[f'dbops {count}'])}, "
            f"squawk {len(flagged[f'squawk {count}'])} ({len(flagged[f'squawk substantive {count}'])} without its "
            "timeout rules)"
        )
        unseen = sorted(flagged[f"dbops {count}"] - flagged[f"squawk substantive {count}"])
        print(f"  flagged by dbops, not by squawk's substantive rules: {len(unseen)} {unseen[:5]}")
    else:
        print("squawk not installed (pip install -r requirements-bench.txt): left out")
    if not has_linter:
        print("django-migration-linter not installed (pip install -r requirements-bench.txt): dbops measured alone")
        return
    linter_big, linter_half = median(timings[f"linter {count}"]), median(timings[f"linter {count // 2}"])
    print(f"linter scaling {count}/{count // 2}: {linter_big / linter_half:.2f}x")
    print(
        f"dbops vs linter at {count}: {linter_big / big:.1f}x faster (wall), at {count // 2}: {linter_half / half:.1f}x"
    )
    ours_flagged, theirs = flagged[f"dbops {count}"], flagged[f"linter {count}"]
    missing = sorted(theirs - ours_flagged)
    print(
        f"flagged migrations: linter {len(theirs)}, dbops {len(ours_flagged)}; "
        f"linter-flagged that dbops misses: {len(missing)} {missing[:5]}; dbops-only: {len(ours_flagged - theirs)}"
    )
    print("AddIndexConcurrently in an atomic migration:")
    print(f"  dbops: {crash[0]}")
    done = crash[1]
    last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
    print(f"  linter: exit {done.returncode}: {last[:160]}")


def _crash_summary(root: Path, apps: str) -> str:
    _, done = manage(root, apps, "migration_report", "crashapp", "--all", "--json")
    findings = [f for m in json.loads(done.stdout)["migrations"] for f in m["findings"]]
    return ", ".join(f"{f['code']} {f['severity']} ({f['migration']})" for f in findings) + f", exit {done.returncode}"


if __name__ == "__main__":
    main()

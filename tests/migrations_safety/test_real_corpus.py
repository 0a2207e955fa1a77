"""Migration safety on migrations nobody here wrote: 320 migrations of wagtail, django-allauth, django CMS, ...

The packages (corpus/requirements.txt) live in a cached virtualenv; the scratch site (corpus/site_settings.py) has
them all installed and every table reporting 2,000,000 rows with every migration pending: upgrading everything at
once on a big site. `manage.py migration_report --json` runs there as a user runs it; the grades a reviewer can read
in corpus/expected.toml must hold, and no operation may go unrendered.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tomllib

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from dbops.localdb import find_bindir
from tests.migrations_safety.corpus.build import (
    CORPUS_DIR,
    corpus_environ,
    corpus_python,
    corpus_schema,
    make_pending_and_big,
    manage,
)

pytestmark = pytest.mark.system

EXPECTED = tomllib.loads((CORPUS_DIR / "expected.toml").read_text())["migration"]


def _admin() -> dict:
    s = connection.settings_dict
    return {"host": s["HOST"], "port": s["PORT"], "user": s["USER"], "password": s["PASSWORD"] or None}


def _url(name: str) -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s["PASSWORD"] else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{name}"


@pytest.fixture(scope="module")
def corpus(django_db_blocker):
    """Yield the scratch site's database on the test cluster, every table big and every migration pending."""
    python = corpus_python()
    name = f"corpus_{secrets.token_hex(4)}"
    with django_db_blocker.unblock(), psycopg.connect(dbname="postgres", autocommit=True, **_admin()) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _url(name)
    bindir = find_bindir()
    dump = corpus_schema(python, url, bindir)  # migrates this database when the schema is not cached yet
    with psycopg.connect(url, autocommit=True) as conn:
        migrated = conn.execute("SELECT to_regclass('public.django_migrations') IS NOT NULL").fetchone()[0]
    if not migrated:
        subprocess.run(
            [str(bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-f", str(dump), url],
            check=True,
            capture_output=True,
            timeout=120,
        )
    with psycopg.connect(url, autocommit=True) as conn:
        make_pending_and_big(conn)
    yield python, url
    with django_db_blocker.unblock(), psycopg.connect(dbname="postgres", autocommit=True, **_admin()) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def report(corpus) -> dict:
    python, url = corpus
    result = manage(python, url, "migration_report", "--all", "--json")
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return json.loads(result.stdout)


def _findings(report: dict) -> dict[str, dict]:
    return {m["migration"]: m for m in report["migrations"]}


def test_every_migration_of_the_corpus_is_graded(report):
    assert report["summary"]["migrations"] >= 300
    apps = {m["migration"].split(".")[0] for m in report["migrations"]}
    assert {"wagtailcore", "account", "cms", "django_celery_results", "taggit", "oauth2_provider"} <= apps
    unrendered = [
        (m["migration"], f["detail"])
        for m in report["migrations"]
        for f in m["findings"]
        if "cannot be rendered" in f["detail"] or "source cannot be read" in f["detail"]
    ]
    assert unrendered == []


def _matches(finding: dict, wanted: str) -> bool:
    severity, _, code = wanted.rpartition(" ")
    return finding["code"] == code and (not severity or finding["severity"] == severity) and not finding["suppressed"]


@pytest.mark.parametrize("expected", EXPECTED, ids=[e["name"] for e in EXPECTED])
def test_expected_grades_of_the_corpus(report, expected):
    migration = _findings(report)[expected["name"]]
    findings = migration["findings"]
    shown = "\n".join(f"{f['severity']} {f['code']} {f['operation']}: {f['detail']}" for f in findings)
    for wanted in expected.get("has", []):
        assert any(_matches(f, wanted) for f in findings), f"{expected['name']} lacks {wanted}:\n{shown}"
    for unwanted in expected.get("lacks", []):
        assert not any(_matches(f, unwanted) for f in findings), f"{expected['name']} has {unwanted}:\n{shown}"
    if "grade" in expected:
        assert migration["grade"] == expected["grade"], shown
    for number in expected.get("quiet_operations", []):
        assert not [f for f in findings if f["operation"].startswith(f"#{number} ")], shown


COUNT_RENDERS = """
import json
import django
django.setup()
from django.db.migrations.state import ModelState
renders = 0
render = ModelState.render
def counted(self, apps):
    global renders
    renders += 1
    return render(self, apps)
ModelState.render = counted
from dbops.migrations_safety.analysis import analyze
report = analyze()
print(json.dumps({"renders": renders, "migrations": len(report.migrations)}))
"""


def test_the_analysis_renders_a_few_models_not_the_project_per_operation(corpus):
    """Rendering the shared state made every later operation re-render all models (64 s for this corpus).

    Counted, not timed: the time is bench/migration_analysis.py's (docs/benchmarks.md).
    """
    python, url = corpus
    result = manage(python, url, "shell", "-c", COUNT_RENDERS)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["migrations"] >= 300
    # Only the operations graded by their emitted SQL render, each a handful of models (11,695 before).
    assert counts["renders"] < 400, counts


@pytest.fixture
def empty_database(django_db_blocker):
    name = f"corpus_apply_{secrets.token_hex(4)}"
    with django_db_blocker.unblock(), psycopg.connect(dbname="postgres", autocommit=True, **_admin()) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _url(name)
    with django_db_blocker.unblock(), psycopg.connect(dbname="postgres", autocommit=True, **_admin()) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _script(python, url: str, *args: str) -> dict:
    result = subprocess.run(
        [str(python), str(CORPUS_DIR / "apply_rewrites.py"), *args],
        env=corpus_environ(url),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_offered_rewrite_imports_applies_and_gives_the_original_schema(corpus, empty_database, tmp_path):
    """Each rewrite the report offers replaces its original in a full migrate of the scratch site.

    Written as migration_rewrite writes it, its files import, it applies, and the schema is the original's (but for
    the database defaults it adds on purpose).
    """
    python, url = corpus
    manifest = _script(python, url, "write", str(tmp_path))
    assert len(manifest["rewrites"]) >= 50, manifest
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    applied = _script(python, empty_database, "apply", str(tmp_path / "manifest.json"))["results"]
    problems = [r for r in applied if r["error"] or r["differences"]]
    assert problems == []
    assert [r["migration"] for r in applied] == [f"{r['app_label']}.{r['original']}" for r in manifest["rewrites"]]

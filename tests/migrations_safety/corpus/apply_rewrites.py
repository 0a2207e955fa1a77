"""Apply every rewrite the report offered, in place of its original, on the scratch site; compare the schemas.

Run by tests/migrations_safety/test_real_corpus.py in the corpus virtualenv, in two steps:
`python apply_rewrites.py write ROOT` on the big corpus database writes every rewrite the report offers (as
`migration_rewrite` writes them) into packages under ROOT and prints the manifest; `python apply_rewrites.py apply
MANIFEST` with DATABASE_URL an empty database applies them. The plan is applied in order; at each migration
that has a rewrite, the original runs inside a transaction that is rolled back once its schema is read, then the
rewrite's files are imported and applied for real (its concurrent parts cannot run in a transaction), and the two
schemas must be the same but for the database defaults the rewrite adds on purpose (db_default). Prints JSON.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import django

django.setup()

from django.db import connection, transaction  # noqa: E402 - after django.setup()
from django.db.migrations.executor import MigrationExecutor  # noqa: E402
from django.db.migrations.state import ProjectState  # noqa: E402

from dbops.migrations_safety.analysis import full_plan  # noqa: E402


class Rollback(Exception):
    """Raised to roll back the original migration once its schema is read."""


def schema() -> dict[str, list]:
    """Every table's columns, constraints and indexes as the catalog shows them (django_migrations aside)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') "
            "FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'django_migrations' "
            "ORDER BY 1, 2"
        )
        columns = [list(row) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.convalidated "
            "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public' "
            "ORDER BY 1, 2"
        )
        constraints = [list(row) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' ORDER BY 1"
        )
        indexes = [list(row) for row in cursor.fetchall()]
    return {"columns": columns, "constraints": constraints, "indexes": indexes}


def differences(original: dict, rewritten: dict, db_defaults: set[tuple[str, str]]) -> list[str]:
    """Return what differs, leaving out the DEFAULT of the columns the rewrite gave a db_default."""

    def columns(shape):
        return {(t, c): (kind, null, "" if (t, c) in db_defaults else default) for t, c, kind, null, default in shape}

    found = []
    before, after = columns(original["columns"]), columns(rewritten["columns"])
    found += [f"column {k}: {before.get(k)} -> {after.get(k)}" for k in sorted(set(before) | set(after))
              if before.get(k) != after.get(k)]  # fmt: skip
    for kind in ("constraints", "indexes"):
        a, b = {tuple(r) for r in original[kind]}, {tuple(r) for r in rewritten[kind]}
        found += [f"{kind[:-1]} only in the original: {r}" for r in sorted(a - b)]
        found += [f"{kind[:-1]} only in the rewrite: {r}" for r in sorted(b - a)]
    return found


def load(package: str, name: str, app_label: str):
    """Import a rewritten migration file as Django's loader would (proves it imports)."""
    module = importlib.import_module(f"{package}.{name}")
    return module.Migration(name, app_label)


def write(root: Path) -> dict:
    """Write every rewrite the report offers (this database's sizes) as packages under `root`; return the manifest."""
    from django.db.migrations import operations

    from dbops.migrations_safety.analysis import analyze
    from dbops.migrations_safety.context import table_name
    from dbops.migrations_safety.rewrites import rewrites_for, write_rewrite

    report = analyze()
    offered = rewrites_for(report)
    loader = MigrationExecutor(connection).loader
    state = ProjectState(real_apps=loader.unmigrated_apps)
    manifest = {"root": str(root), "migrations": len(report.migrations), "rewrites": []}
    for node in full_plan(loader):
        rewrite = offered.get(f"{node[0]}.{node[1]}")
        if rewrite is not None:
            package = f"rw_{node[0]}_{node[1].split('_')[0]}"
            folder = root / package
            write_rewrite(rewrite, folder)
            (folder / "__init__.py").write_text("")
            if rewrite.later is not None:
                (folder / "later" / "__init__.py").write_text("")
            defaults = []
            for part in rewrite.now:
                for op in part.operations:
                    if isinstance(op, operations.AddField) and "db_default" in op.field.deconstruct()[3]:
                        model = state.models[(node[0], op.model_name_lower)]
                        table = table_name(node[0], model.name_lower, model.options, connection)
                        defaults.append((table, op.field.db_column or op.name))
            manifest["rewrites"].append(
                {
                    "app_label": node[0],
                    "original": node[1],
                    "package": package,
                    "now": [m.name for m in rewrite.now],
                    "later": rewrite.later.name if rewrite.later else None,
                    "db_defaults": defaults,
                }
            )
        for op in loader.graph.nodes[node].operations:
            op.state_forwards(node[0], state)
    return manifest


def main() -> None:
    if sys.argv[1] == "write":
        print(json.dumps(write(Path(sys.argv[2]))))
        return
    manifest = json.loads(Path(sys.argv[2]).read_text())
    root = Path(manifest["root"])
    sys.path.insert(0, str(root))
    rewrites = {(r["app_label"], r["original"]): r for r in manifest["rewrites"]}
    executor = MigrationExecutor(connection)
    loader = executor.loader
    state = ProjectState(real_apps=loader.unmigrated_apps)
    state.apps  # noqa: B018 - render once, as migrate does; every apply then re-renders only what changes
    results = []
    for node in full_plan(loader):
        migration = loader.graph.nodes[node]
        rewrite = rewrites.get(node)
        if rewrite is None:
            state = executor.apply_migration(state, migration)
            continue
        outcome = {"migration": f"{node[0]}.{node[1]}", "differences": [], "error": None}
        try:
            with transaction.atomic():
                executor.apply_migration(state.clone(), migration)
                original = schema()
                raise Rollback
        except Rollback:
            pass
        except Exception as exc:  # noqa: BLE001 - reported, the test fails on it
            outcome["error"] = f"the original does not apply in a transaction: {type(exc).__name__}: {exc}"[:500]
            results.append(outcome)
            break
        try:
            package = rewrite["package"]
            for name in rewrite["now"]:
                state = executor.apply_migration(state, load(package, name, node[0]))
            if rewrite["later"]:
                state = executor.apply_migration(state, load(f"{package}.later", rewrite["later"], node[0]))
            defaults = {tuple(pair) for pair in rewrite["db_defaults"]}
            outcome["differences"] = differences(original, schema(), defaults)
        except Exception as exc:  # noqa: BLE001 - reported per rewrite, the test fails on any
            outcome["error"] = f"{type(exc).__name__}: {exc}"[:500]
            results.append(outcome)
            break  # the database is now between two states: later results would mean nothing
        results.append(outcome)
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()

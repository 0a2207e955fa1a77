"""Write what `manage.py sqlmigrate` prints for every migration of an app, one .sql file each, in one process.

squawk lints SQL, so it reads Django migrations through this output. One process carries the project state
from migration to migration (sqlmigrate per migration would rebuild it every time).
Run with the benchmark's settings: python bench/sqlmigrate_all.py APP FOLDER (APP "--all": every app, in plan order).
"""

from __future__ import annotations

import sys
from pathlib import Path

import django


def main(app_label: str, folder: Path) -> str:
    """Write APP's migrations (or, with APP "--all", every migration of the project in plan order) as SQL files.

    Returns "<written> <failed>": a migration whose SQL Django cannot render here (its schema editor looks up a
    constraint the database does not have, say) is counted as failed and written as nothing.
    """
    django.setup()
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.state import ProjectState

    loader = MigrationLoader(connection)
    if app_label == "--all":
        nodes, seen = [], set()
        for leaf in sorted(loader.graph.leaf_nodes()):
            for node in loader.graph.forwards_plan(leaf):
                if node not in seen:
                    seen.add(node)
                    nodes.append(node)
        state = ProjectState(real_apps=loader.unmigrated_apps)
    else:
        leaf = max(loader.graph.leaf_nodes(app_label))
        nodes = [node for node in loader.graph.forwards_plan(leaf) if node[0] == app_label]
        state = loader.project_state(nodes[0], at_end=False)
    folder.mkdir(parents=True, exist_ok=True)
    failed = 0
    for node in nodes:
        migration = loader.graph.nodes[node]
        try:
            with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                state = migration.apply(state, editor, collect_sql=True)
        except Exception:  # noqa: BLE001 - counted: squawk then sees nothing of this migration
            failed += 1
            for op in migration.operations:
                op.state_forwards(node[0], state)
            continue
        statements = editor.collected_sql
        if migration.atomic:
            statements = ["BEGIN;", *statements, "COMMIT;"]
        (folder / f"{node[0]}.{node[1]}.sql").write_text("\n".join(statements) + "\n")
    return f"{len(nodes) - failed} {failed}"


if __name__ == "__main__":
    print(main(sys.argv[1], Path(sys.argv[2])))

"""Write what `manage.py sqlmigrate` prints for every migration of an app, one .sql file each, in one process.

squawk lints SQL, so it reads Django migrations through this output. One process carries the project state
from migration to migration (sqlmigrate per migration would rebuild it every time).
Run with the benchmark's settings: python bench/sqlmigrate_all.py APP FOLDER
"""

from __future__ import annotations

import sys
from pathlib import Path

import django


def main(app_label: str, folder: Path) -> int:
    django.setup()
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection)
    nodes = [
        node for node in loader.graph.forwards_plan(max(loader.graph.leaf_nodes(app_label))) if node[0] == app_label
    ]
    state = loader.project_state(nodes[0], at_end=False)
    folder.mkdir(parents=True, exist_ok=True)
    for node in nodes:
        migration = loader.graph.nodes[node]
        with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
            state = migration.apply(state, editor, collect_sql=True)
        statements = editor.collected_sql
        if migration.atomic:
            statements = ["BEGIN;", *statements, "COMMIT;"]
        (folder / f"{node[1]}.sql").write_text("\n".join(statements) + "\n")
    return len(nodes)


if __name__ == "__main__":
    print(main(sys.argv[1], Path(sys.argv[2])))

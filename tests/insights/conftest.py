"""The planted database of the insight tests: one of each problem #31 names, on real tables."""

from __future__ import annotations

import dataclasses
import importlib.util

import psycopg
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dbops.conf.config import InsightsConfig
from tests.conftest import test_database_connection

LOWERED = dataclasses.replace(
    InsightsConfig(),
    xid_age_warn=1,
    foreign_key_min_rows=1_000,
    unused_index_days=0,
    unused_index_min_kb=0,
    dead_tuples_min=100,
    cache_hit_ratio=1.01,
    cache_min_blocks=0,
)
SLOT = "dbops_insights_test"


@pytest.fixture
def planted():
    with test_database_connection() as conn:
        conn.execute("CREATE TABLE insights_parent (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE insights_child (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "parent_id bigint NOT NULL REFERENCES insights_parent (id), note text)"
        )
        conn.execute("INSERT INTO insights_parent SELECT FROM generate_series(1, 10)")
        conn.execute("INSERT INTO insights_child (parent_id) SELECT 1 + g % 10 FROM generate_series(1, 5000) g")
        conn.execute("CREATE INDEX insights_note_a ON insights_child (note)")
        conn.execute("CREATE INDEX insights_note_b ON insights_child (note)")
        conn.execute("CREATE TABLE insights_invalid (v int)")
        conn.execute("INSERT INTO insights_invalid VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY insights_invalid_v ON insights_invalid (v)")
        conn.execute("CREATE TABLE insights_dead (v int)")
        conn.execute("INSERT INTO insights_dead SELECT g FROM generate_series(1, 2000) g")
        conn.execute("DELETE FROM insights_dead WHERE v > 200")
        conn.execute("ANALYZE insights_parent, insights_child")
        conn.execute("SELECT setval(pg_get_serial_sequence('auth_group', 'id'), 2000000000)")
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", [SLOT])
    yield
    with test_database_connection() as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", [SLOT])
        conn.execute("SELECT setval(pg_get_serial_sequence('auth_group', 'id'), 1, false)")
        conn.execute("DROP TABLE insights_child, insights_parent, insights_invalid, insights_dead")


def load_admin_migration(path):
    """Import a written fix migration of the admin app from its file."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Migration(path.stem, "admin")


def executor_with(migrations: list) -> MigrationExecutor:
    """Return a migration executor whose graph also holds `migrations` (written admin fixes), in their chain."""
    executor = MigrationExecutor(connection)
    for migration in migrations:
        executor.loader.graph.add_node(("admin", migration.name), migration)
        for parent in migration.dependencies:
            executor.loader.graph.add_dependency(migration, ("admin", migration.name), parent)
    return executor

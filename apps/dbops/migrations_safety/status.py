"""Selectors: which migrations exist on disk and which a database has applied."""

from __future__ import annotations

import functools

from django.core.signals import setting_changed
from django.db.migrations.loader import MigrationLoader
from django.dispatch import receiver

from dbops.database.pool import probe_connection
from dbops.database.rows import one_row


@functools.cache
def _disk_migrations() -> tuple[tuple[tuple[str, str], ...], dict[tuple[str, str], tuple[tuple[str, str], ...]]]:
    """Return every migration on disk in plan order, and what each squashed migration replaces.

    Read once per process: migration files do not change while it runs.
    """
    loader = MigrationLoader(None, ignore_no_migrations=True)
    plan: list[tuple[str, str]] = []
    for leaf in sorted(loader.graph.leaf_nodes()):
        for node in loader.graph.forwards_plan(leaf):
            if node not in plan:
                plan.append(node)
    replacements = {key: tuple(migration.replaces) for key, migration in loader.replacements.items()}
    return tuple(plan), replacements


@receiver(setting_changed)
def _forget_disk_migrations(setting: str, **kwargs) -> None:
    """Forget the cached migration files when tests swap apps or migration modules."""
    if setting in ("INSTALLED_APPS", "MIGRATION_MODULES"):
        _disk_migrations.cache_clear()


def applied_migrations(alias: str, *, timeout: float) -> set[tuple[str, str]]:
    """Return the (app, name) pairs recorded in django_migrations (empty before the first migrate)."""
    with probe_connection(alias, timeout) as conn:
        if one_row(conn.execute("SELECT to_regclass('django_migrations')"))[0] is None:
            return set()
        return {(app, name) for app, name in conn.execute("SELECT app, name FROM django_migrations")}


def pending_migrations(alias: str, *, timeout: float) -> list[tuple[str, str]]:
    """Return the migrations on disk that `alias` has not applied, in plan order."""
    plan, replacements = _disk_migrations()
    applied = applied_migrations(alias, timeout=timeout)
    for squashed, replaced in replacements.items():
        if replaced and all(key in applied for key in replaced):
            applied.add(squashed)
    return [node for node in plan if node not in applied]

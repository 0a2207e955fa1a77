"""What Django's schema editor will do to a column, decided on the migration state without rendering models.

The rules must be true of the SQL Django runs: these helpers mirror the schema editor's own decisions (the default
it puts on a new NOT NULL column, the type a foreign key column takes from its target, whether an AlterField
changes the schema at all, the CHECK a field carries) on unrendered model states, so the analysis stays linear.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from django.db import models
from django.db.migrations.state import ProjectState
from django.db.migrations.utils import resolve_relation

ModelKey = tuple[str, str]


def column_name(field: models.Field, name: str) -> str:
    clone = field.clone()
    clone.set_attributes_from_name(name)
    return clone.column


def target_key(field: models.Field, app_label: str, model_name: str) -> ModelKey | None:
    """Return the (app_label, model_name) a relation points to, or None for a field that is not a relation."""
    remote = getattr(field, "remote_field", None)
    if remote is None or remote.model is None:
        return None
    label, name = resolve_relation(remote.model, app_label, model_name)
    return label, name.lower()


def _primary_key(model_state) -> tuple[str, models.Field] | None:
    for name, field in model_state.fields.items():
        if field.primary_key:
            return name, field
    return None


def column_type(
    field: models.Field, state: ProjectState, app_label: str, model_name: str, connection, _depth: int = 0
) -> str | None:
    """Return the column type Django gives `field`; for a foreign key, the type its target's column gives it."""
    if field.many_to_many:
        return None
    if getattr(field, "remote_field", None) is None:
        try:
            return field.db_type(connection)
        except (AttributeError, ValueError, LookupError):
            return None
    key = target_key(field, app_label, model_name)
    target_model = state.models.get(key) if key else None
    if target_model is None or _depth > 5:
        return None
    to_field = getattr(field.remote_field, "field_name", None)
    found = (to_field, target_model.fields[to_field]) if to_field in target_model.fields else _primary_key(target_model)
    if found is None:
        return None
    target = found[1]
    if target.is_relation:
        return column_type(target, state, key[0], key[1], connection, _depth + 1)
    try:
        return target.rel_db_type(connection)
    except (AttributeError, ValueError, LookupError):
        return None


def new_column_default(field: models.Field, connection):
    """Return the value Django writes into existing rows when it adds `field` (its one-off DEFAULT), or None for none.

    `blank=True` text fields get '' and auto_now fields the current time, as the schema editor does.
    """
    try:
        return connection.schema_editor(collect_sql=True, atomic=False).effective_default(field.clone())
    except (TypeError, AttributeError, ValueError, LookupError):
        # A relation's default is checked against its (unrendered) target model: the default is still a default.
        return field.default if field.has_default() else None


def describe_default(value) -> str:
    """Say what existing rows get, readably (psycopg's Int4(0) is 0, a callable is its name)."""
    if callable(value):
        return f"{getattr(value, '__name__', 'a callable')}()"
    value = getattr(value, "obj", value)  # psycopg's Jsonb wrapper
    if isinstance(value, datetime.datetime | datetime.date):
        return "the time the migration runs"
    if isinstance(value, int) and not isinstance(value, bool):
        value = int(value)
    shown = repr(value)
    return shown if len(shown) <= 40 else f"{shown[:37]}..."


def _db_kwargs(field: models.Field, app_label: str, model_name: str) -> tuple:
    _, path, args, kwargs = field.deconstruct()
    for attribute in field.non_db_attrs:
        kwargs.pop(attribute, None)
    kwargs.pop("db_comment", None)
    if "to" in kwargs:
        kwargs["to"] = target_key(field, app_label, model_name)
    return path, args, kwargs


def schema_changes(old: models.Field, new: models.Field, old_name: str, app_label: str, model_name: str) -> bool:
    """Tell whether AlterField old -> new changes the schema (Django's `_field_should_be_altered`)."""
    if column_name(old, old_name) != column_name(new, old_name):
        return True
    return _db_kwargs(old, app_label, model_name) != _db_kwargs(new, app_label, model_name)


def check_sql(field: models.Field, name: str, connection) -> str | None:
    """Return the CHECK Django adds with the column (PositiveIntegerField: "col" >= 0), or None."""
    clone = field.clone()
    clone.set_attributes_from_name(name)
    try:
        return clone.db_check(connection)
    except (AttributeError, ValueError, LookupError):
        return None


def referencing_fields(state: ProjectState, key: ModelKey, field_name: str) -> Iterator[tuple[ModelKey, str]]:
    """Yield (model, field name) of every foreign key whose column follows `key`.`field_name` (its type, its FK)."""
    target = state.models.get(key)
    primary = _primary_key(target) if target else None
    for model_key, model in state.models.items():
        for name, field in model.fields.items():
            if field.many_to_many or not field.is_relation or target_key(field, *model_key) != key:
                continue
            to_field = getattr(field.remote_field, "field_name", None)
            if (to_field or (primary[0] if primary else None)) == field_name:
                yield model_key, name

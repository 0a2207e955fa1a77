"""The SQL an operation's `database_forwards` emits on this database, rendered on a small copy of the state.

Used for the operations the rules do not model exactly: a third-party subclass that overrides `database_forwards`
(django-celery-results' `FakeAddIndex` emits nothing), operations no rule knows (`RenameIndex`, ...). Rendering the
analyzer's shared state would make every later operation re-render its models (Django's `reload_model`): a 15-27x
slower analysis. Instead only the models the operation names are copied, with what they point to (their relations'
targets, M2M through models and bases, transitively): a few models, whatever the size of the project.
"""

from __future__ import annotations

from django.db.migrations.state import ProjectState
from django.db.migrations.utils import resolve_relation

ModelKey = tuple[str, str]


def _targets(model_state) -> set[ModelKey]:
    """Return the models a model state points to: relation targets, through models, model bases."""
    found: set[ModelKey] = set()
    for field in model_state.fields.values():
        remote = getattr(field, "remote_field", None)
        if remote is None:
            continue
        for target in (remote.model, getattr(remote, "through", None)):
            if target is not None:
                found.add(resolve_relation(target, model_state.app_label, model_state.name_lower))
    for base in model_state.bases:
        if isinstance(base, str):
            found.add(resolve_relation(base, model_state.app_label, model_state.name_lower))
        elif hasattr(base, "_meta") and not base._meta.abstract:
            found.add((base._meta.app_label, base._meta.model_name))
    return {(label, name.lower()) for label, name in found}


def _closure(state: ProjectState, keys: set[ModelKey]) -> set[ModelKey]:
    pending, seen = list(keys), set()
    while pending:
        key = pending.pop()
        if key in seen or key not in state.models:
            continue
        seen.add(key)
        pending.extend(_targets(state.models[key]) - seen)
    return seen


def _named_models(app_label: str, operation) -> set[ModelKey]:
    """Return the models an operation names (model_name / name), plus its new fields' relation targets."""
    keys = set()
    for attribute in ("model_name", "name", "old_name", "new_name"):
        value = getattr(operation, f"{attribute}_lower", None) or getattr(operation, attribute, None)
        if isinstance(value, str):
            keys.add((app_label, value.lower()))
    fields = [operation.field] if hasattr(operation, "field") else list(getattr(operation, "fields", ()) or ())
    for field in fields:
        field = field[1] if isinstance(field, tuple) else field
        remote = getattr(field, "remote_field", None)
        if remote is not None and remote.model is not None:
            label, name = resolve_relation(remote.model, app_label)
            keys.add((label, name.lower()))
    return keys


def small_state(state: ProjectState, keys: set[ModelKey]) -> ProjectState:
    """Return a copy of `state` holding only the models `keys` need to render."""
    needed = _closure(state, keys)
    return ProjectState({key: state.models[key].clone() for key in needed}, real_apps=state.real_apps)


def emitted_sql(app_label: str, operation, state: ProjectState, connection) -> list[str]:
    """Return the SQL `operation` would run from `state` on `connection` (nothing is executed).

    Raises what rendering or the schema editor raise (the caller reports it); `state` is not changed.
    """
    keys = _named_models(app_label, operation)
    before = small_state(state, keys)
    after = before.clone()
    operation.state_forwards(app_label, after)
    for key in _named_models(app_label, operation) - set(after.models):
        if key in state.models:  # e.g. the target of a relation the operation adds
            after.models[key] = state.models[key].clone()
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        operation.database_forwards(app_label, editor, before, after)
    return list(editor.collected_sql)

"""Which Django model and field a table and column belong to (from the installed models, not the migrations)."""

from __future__ import annotations

import dataclasses
import functools

from django.apps import apps
from django.db import models


@dataclasses.dataclass(frozen=True)
class ModelRef:
    label: str  # "app_label.Model"
    field: str | None = None
    field_class: str | None = None  # "AutoField", "ForeignKey", ...

    def __str__(self) -> str:
        return f"{self.label}.{self.field}" if self.field else self.label


@functools.cache
def _tables() -> dict[str, type[models.Model]]:
    found: dict[str, type[models.Model]] = {}
    for model in apps.get_models(include_auto_created=True):
        opts = model._meta
        if opts.managed and not opts.proxy:
            found.setdefault(opts.db_table, model)
    return found


def model_of(table: str, column: str | None = None) -> ModelRef | None:
    """Return the model (and field, for a column) behind `table` (schema-qualified or not), or None."""
    model = _tables().get(table.rpartition(".")[2])
    if model is None:
        return None
    label = f"{model._meta.app_label}.{model.__name__}"
    if column is None:
        return ModelRef(label)
    for field in model._meta.concrete_fields:
        if field.column == column:
            return ModelRef(label, field.name, type(field).__name__)
    return ModelRef(label)


def forget() -> None:
    """Drop the cached map (tests that install models at run time)."""
    _tables.cache_clear()

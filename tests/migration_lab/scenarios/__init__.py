"""Migration chains for the guarded-runner tests: one package per scenario, all on the table migration_lab_item."""

from django.db import migrations, models


def create_item() -> migrations.CreateModel:
    return migrations.CreateModel(
        "Item", [("id", models.BigAutoField(primary_key=True)), ("name", models.CharField(max_length=100))]
    )


def add_note() -> migrations.AddField:
    return migrations.AddField("item", "note", models.TextField(null=True))

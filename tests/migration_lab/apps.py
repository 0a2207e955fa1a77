from django.apps import AppConfig


class MigrationLabConfig(AppConfig):
    """A test-only app whose migration module each runner test picks (MIGRATION_MODULES) from scenarios/."""

    name = "tests.migration_lab"
    label = "migration_lab"
    default_auto_field = "django.db.models.BigAutoField"

from django.db import migrations, models

# The proof test holds this advisory lock: the migration waits here, after building the index and (when atomic)
# while still holding what the build locked, so a writer can be tried at that moment.
MARKER_KEY = 4242


class Migration(migrations.Migration):
    dependencies = [("migration_lab", "0001_initial")]
    operations = [
        migrations.AddIndex("item", models.Index(fields=["name"], name="item_name_idx")),
        migrations.RunSQL(
            ["SELECT set_config('lock_timeout', '0', false)", f"SELECT pg_advisory_xact_lock({MARKER_KEY})"],
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]

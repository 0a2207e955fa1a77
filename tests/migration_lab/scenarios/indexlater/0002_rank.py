from django.db import migrations, models


class Migration(migrations.Migration):
    """A one-off default, then an index on the new column: the index has no mechanical safe form here."""

    dependencies = [("migration_lab", "0001_initial")]
    operations = [
        migrations.AddField("item", "rank", models.IntegerField(default=0)),
        migrations.AlterField("item", "rank", models.IntegerField(default=0, db_index=True)),
    ]

from django.db import migrations, models
from django.db.models.functions import Upper


class Migration(migrations.Migration):
    dependencies = [("migration_lab", "0001_initial")]
    operations = [
        migrations.AddField(
            "item",
            "label",
            models.GeneratedField(expression=Upper("name"), output_field=models.TextField(), db_persist=True),
        )
    ]

from django.contrib.postgres.functions import RandomUUID
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("migration_lab", "0001_initial")]
    operations = [migrations.AddField("item", "token", models.UUIDField(db_default=RandomUUID()))]

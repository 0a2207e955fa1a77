from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("migration_lab", "0001_initial")]
    operations = [migrations.AddField("item", "rank", models.IntegerField(db_default=None))]
